package advance

import "testing"

func TestRegionIsReadFromTheVendorsHost(t *testing.T) {
	for base, want := range map[string]string{
		"https://sg-api.example.ai":      "sg",
		"https://mex-api.example.ai/":    "mex",
		"https://api.example.ai":         "id",
		"http://127.0.0.1:9090":          "",
		"http://localhost:9090":          "",
		"https://proxy.internal.example": "",
		"::not a url":                    "",
	} {
		if got := Region(base); got != want {
			t.Errorf("Region(%q) = %q, want %q", base, got, want)
		}
	}
}

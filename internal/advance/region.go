package advance

import (
	"net/url"
	"strings"
)

// Region returns the vendor region a base URL points at: the vendor has one host per region,
// {region}-api.<domain>, and plain api.<domain> for Indonesia. Any other host (a simulator, a
// proxy) gives "", meaning unknown.
func Region(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil {
		return ""
	}
	host := strings.ToLower(u.Hostname())
	first, rest, ok := strings.Cut(host, ".")
	if !ok || !strings.Contains(rest, ".") {
		return ""
	}
	if first == "api" {
		return "id"
	}
	if region, found := strings.CutSuffix(first, "-api"); found && region != "" {
		return region
	}
	return ""
}

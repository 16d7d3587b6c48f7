package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/httpapi"
)

func TestTheServedSpecListsTheConfiguredRegions(t *testing.T) {
	t.Parallel()
	srv := httpapi.New(httpapi.Config{Regions: []string{"ph", "th"}})
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var spec struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name   string `json:"name"`
				Schema struct {
					Enum []string `json:"enum"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &spec))
	seen := 0
	for path, ops := range spec.Paths {
		for method, op := range ops {
			for _, p := range op.Parameters {
				if p.Name == "region" {
					seen++
					require.Equal(t, []string{"ph", "th"}, p.Schema.Enum, "%s %s", method, path)
				}
			}
		}
	}
	require.Equal(t, 5, seen, "the regional callback, /v1/alerts, /v1/cases, /v1/users/{userId}/duplicates and /cluster")
}

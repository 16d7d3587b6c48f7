package httpapi

import (
	_ "embed"
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPISpec describes every route of routes.go; TestTheSpecListsEveryRoute keeps them in step.
//
//go:embed openapi.json
var openAPISpec []byte

// OpenAPISpec returns the OpenAPI 3 description, as embedded (any region code).
func OpenAPISpec() []byte { return openAPISpec }

// specFor returns the description of a server with these vendor regions: every region parameter
// lists them, so that a client (or schemathesis) knows which codes this deployment accepts. No
// regions leaves the embedded description as it is.
func specFor(regions []string) []byte {
	if len(regions) == 0 {
		return openAPISpec
	}
	var spec map[string]any
	if err := json.Unmarshal(openAPISpec, &spec); err != nil {
		return openAPISpec // the embedded document is valid JSON: TestTheSpecListsEveryRoute reads it
	}
	paths, _ := spec["paths"].(map[string]any)
	for _, item := range paths {
		ops, _ := item.(map[string]any)
		for _, op := range ops {
			params, _ := op.(map[string]any)["parameters"].([]any)
			for _, p := range params {
				param, _ := p.(map[string]any)
				if schema, ok := param["schema"].(map[string]any); ok && param["name"] == "region" {
					schema["enum"] = regions
				}
			}
		}
	}
	out, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return openAPISpec
	}
	return out
}

func (s *Server) handleOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, s.spec)
}

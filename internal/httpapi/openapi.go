package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPISpec describes every route of routes.go; TestTheSpecListsEveryRoute keeps them in step.
//
//go:embed openapi.json
var openAPISpec []byte

// OpenAPISpec returns the OpenAPI 3 description the server serves at /openapi.json.
func OpenAPISpec() []byte { return openAPISpec }

func (s *Server) handleOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPISpec)
}

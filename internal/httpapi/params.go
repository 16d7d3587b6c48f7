package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/clip"
)

// queryParams lists the query parameters each route accepts, keyed by "METHOD path" as Echo
// registers it; a route not listed takes none. A parameter a route does not know is a 400 naming it,
// so that a misspelt or unsupported filter (?severity= before it existed) never silently returns
// everything.
var queryParams = map[string][]string{
	"POST /v1/callbacks/advance":         {"token"},
	"POST /v1/callbacks/advance/:region": {"token"},
	"GET /v1/alerts":                     {"limit", "since", "cursor", "severity", "status", "userId", "region"},
	"GET /v1/users/:userId/duplicates":   {"region"},
	"GET /v1/users/:userId/cluster":      {"region"},
	"GET /v1/rings":                      {"order", "limit", "cursor"},
	"GET /v1/rings/:ringId":              {"userId"},
	"GET /v1/reviews":                    {"userId", "reviewer", "since", "limit", "cursor"},
	"GET /v1/access-log":                 {"userId", "ringId", "actor", "since", "limit", "cursor"},
	"GET /v1/cases":                      {"status", "region", "assignee", "severity", "sort", "limit", "cursor"},
}

// rejectUnknownQuery answers 400 for a query string that does not parse, and for a query parameter
// the matched route does not accept. A method the path does not serve is left to Echo's 405,
// whatever its query says.
//
// Echo's QueryParams drops the parse error and keeps what parsed before it: "?userId=cust-1002;"
// (a semicolon, which Go no longer takes as a separator) read as no parameter at all, so the filter
// and this guard were both skipped and every alert was answered. The query is parsed strictly here
// first, for every route.
func (s *Server) rejectUnknownQuery() echo.MiddlewareFunc {
	var once sync.Once
	registered := map[string]bool{}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if _, err := url.ParseQuery(c.Request().URL.RawQuery); err != nil {
				return invalid("", "the query string does not parse (%s): separate parameters with & and percent-encode ; %% and +", queryProblem(err))
			}
			params := c.QueryParams()
			if len(params) == 0 {
				return next(c)
			}
			once.Do(func() {
				for _, r := range s.echo.Routes() {
					registered[r.Method+" "+r.Path] = true
				}
			})
			method := c.Request().Method
			if !registered[method+" "+c.Path()] {
				return next(c)
			}
			if method == http.MethodHead { // a GET route's HEAD takes what the GET takes
				method = http.MethodGet
			}
			allowed := queryParams[method+" "+c.Path()]
			names := make([]string, 0, len(params))
			for name := range params {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				if slices.Contains(allowed, name) {
					continue
				}
				if len(allowed) == 0 {
					return invalid(name, "unknown query parameter %q: this route takes none", name)
				}
				return invalid(name, "unknown query parameter %q: this route takes %v", name, allowed)
			}
			return next(c)
		}
	}
}

// singleQuery returns the value of a query parameter given at most once and not empty, "" when it
// is absent.
func singleQuery(c echo.Context, name string) (string, error) {
	v, given := c.QueryParams()[name]
	if !given {
		return "", nil
	}
	if len(v) != 1 || v[0] == "" {
		return "", invalid(name, "%s must be given once and not be empty", name)
	}
	return v[0], nil
}

// queryProblem says what url.ParseQuery found wrong, without the Go wording around it.
func queryProblem(err error) string {
	var escape url.EscapeError
	switch {
	case errors.As(err, &escape):
		return "invalid percent-escape " + strconv.Quote(clip.Ellipsis(string(escape), 16))
	case strings.Contains(err.Error(), "semicolon"):
		return "a semicolon"
	default:
		return "malformed"
	}
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// net/http answers a request it cannot parse (a bad %-escape in the path, a header over
// MaxHeaderBytes, a missing Host, an unknown transfer encoding) itself, before any handler runs,
// with a fixed plain-text answer written straight to the connection in one call:
//
//	HTTP/1.1 <status>\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n<text>
//
// No handler can change that, so jsonErrorListener rewrites exactly that form into the API's one
// JSON error shape. A handler's own answer never matches it: net/http writes a handler's headers
// sorted, so Connection comes before Content-Type, and always with a Date.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// jsonErrorListener wraps each accepted connection in a jsonErrorConn.
type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return jsonErrorConn{c}, nil
}

// jsonErrorConn rewrites net/http's own plain-text error answers (see netHTTPErrorHeaders).
type jsonErrorConn struct{ net.Conn }

func (c jsonErrorConn) Write(b []byte) (int, error) {
	if out, ok := rewriteNetHTTPError(b); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// CloseWrite keeps net/http's half-close after a 431 (it looks for this method on the connection).
func (c jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// rewriteNetHTTPError returns the JSON form of one of net/http's fixed error answers, or false when
// b is anything else.
func rewriteNetHTTPError(b []byte) ([]byte, bool) {
	const prefix = "HTTP/1.1 "
	lineEnd := bytes.IndexByte(b, '\r')
	if !bytes.HasPrefix(b, []byte(prefix)) || lineEnd < len(prefix)+3 ||
		!bytes.HasPrefix(b[lineEnd:], []byte(netHTTPErrorHeaders)) {
		return nil, false
	}
	status, err := strconv.Atoi(string(b[len(prefix) : len(prefix)+3]))
	if err != nil || status < 400 {
		return nil, false
	}
	text := string(b[lineEnd+len(netHTTPErrorHeaders):])
	body := Error{Error: statusCodes[status], Message: parseErrorMessage(status, text)}
	if body.Error == "" {
		body.Error = codeInvalidInput
	}
	raw, _ := json.Marshal(body)
	raw = append(raw, '\n')
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n",
		status, http.StatusText(status), len(raw))
	out.Write(raw)
	return out.Bytes(), true
}

// parseErrorMessage says what was wrong in words a client can act on; net/http's own text is kept
// where it says more than the status (e.g. "missing required Host header").
func parseErrorMessage(status int, text string) string {
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		return fmt.Sprintf("the request header is larger than %d bytes", maxHeaderBytes)
	case http.StatusNotImplemented:
		return "the request's Transfer-Encoding is not supported"
	}
	if _, detail, ok := bytes.Cut([]byte(text), []byte(": ")); ok {
		return "the request could not be parsed: " + string(detail)
	}
	return "the request could not be parsed: check the URL's %-escapes and the header syntax"
}

package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/doppelhq/doppel/internal/httpapi"
)

// Cookie names. The session cookie holds a random token, never the API key; the server keeps only
// the token's SHA-256.
const (
	sessionCookie = "doppel_console_session"
	loginCookie   = "doppel_console_login"
	csrfField     = "csrf"
)

// session is one sign-in: the API key's name (recorded as the reviewer) and scopes, and the CSRF
// token every form of the session carries.
type session struct {
	name    string
	scopes  []string
	csrf    string
	expires time.Time
	// flash is a message for the next page the session sees (what a form just did); kept on the
	// server so that no link can make the console say something it did not.
	flash string
}

func (s *session) can(scope string) bool { return scope == "" || slices.Contains(s.scopes, scope) }

// sessions is the in-memory session table. Sessions live in the process: a restart signs everyone
// out, and behind a load balancer a session is good on the instance that issued it (route the
// console stickily).
type sessions struct {
	mu   sync.Mutex
	byID map[[32]byte]*session
	ttl  time.Duration
	now  func() time.Time
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[[32]byte]*session{}, ttl: ttl, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for key and returns its cookie token.
func (ss *sessions) create(key httpapi.APIKey) (string, *session) {
	token := randomToken()
	s := &session{name: key.Name, scopes: key.Scopes, csrf: randomToken(), expires: ss.now().Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for id, old := range ss.byID { // sweep: the table holds live sessions only
		if !now.Before(old.expires) {
			delete(ss.byID, id)
		}
	}
	ss.byID[sha256.Sum256([]byte(token))] = s
	return token, s
}

func (ss *sessions) get(token string) (*session, bool) {
	id := sha256.Sum256([]byte(token))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	if !ok {
		return nil, false
	}
	if !ss.now().Before(s.expires) {
		delete(ss.byID, id)
		return nil, false
	}
	return s, true
}

// setFlash leaves msg for the session's next page.
func (ss *sessions) setFlash(s *session, msg string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.flash = msg
}

// takeFlash returns the session's message, once.
func (ss *sessions) takeFlash(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	msg := s.flash
	s.flash = ""
	return msg
}

func (ss *sessions) end(token string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, sha256.Sum256([]byte(token)))
}

// setCookie writes a console cookie: HttpOnly, SameSite=Strict, scoped to the console, Secure when
// the request came over TLS. maxAge < 0 deletes it.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: httpapi.ConsolePath, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

type sessionKey struct{}

func sessionOf(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// requireSession sends a request without a live session to the sign-in page (GET) or refuses it
// (POST: 401), checks the CSRF token of every POST (403 without the session's), and the scope the
// page needs (403).
func (c *Console) requireSession(next http.HandlerFunc, scope string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *session
		if ck, err := r.Cookie(sessionCookie); err == nil {
			s, _ = c.sessions.get(ck.Value)
		}
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
			c.fail(w, r, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		if r.Method != http.MethodGet {
			given := r.PostFormValue(csrfField)
			if subtle.ConstantTimeCompare([]byte(given), []byte(s.csrf)) != 1 {
				c.fail(w, r, http.StatusForbidden, "This form is missing its security token. Reload the page and try again.")
				return
			}
		}
		if !s.can(scope) {
			c.fail(w, r, http.StatusForbidden, "Your API key lacks the "+scope+" scope this needs.")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

type loginPage struct {
	CSRF  string
	Error string
}

// handleLoginPage shows the sign-in form with a one-off token, also set as a cookie, that the
// POST must echo: a page elsewhere cannot sign a browser in under someone else's key.
func (c *Console) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := randomToken()
	setCookie(w, r, loginCookie, token, 10*time.Minute)
	c.render(w, r, status, "login", page{Title: "Sign in", Data: loginPage{CSRF: token, Error: msg}})
}

// handleLogin exchanges an API key for a session cookie. The key travels only in this POST's body
// and is neither logged nor kept.
func (c *Console) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue(csrfField))) != 1 {
		c.showLogin(w, r, http.StatusForbidden, "The sign-in form expired. Try again.")
		return
	}
	if retryAfter, blocked := c.cfg.SignIn.Blocked(r); blocked {
		w.Header().Set("Retry-After", retryAfter)
		c.showLogin(w, r, http.StatusTooManyRequests, "Too many failed sign-ins from this address: try again in "+retryAfter+" s.")
		return
	}
	key, ok := httpapi.MatchAPIKey(c.cfg.APIKeys, r.PostFormValue("apiKey"))
	if !ok {
		c.cfg.SignIn.Failed(r) // counted and logged there, without what was typed
		c.showLogin(w, r, http.StatusUnauthorized, "That API key is not known.")
		return
	}
	if !slices.Contains(key.Scopes, httpapi.ScopeRead) {
		c.showLogin(w, r, http.StatusForbidden, "That API key lacks the read scope the console needs.")
		return
	}
	token, _ := c.sessions.create(key)
	setCookie(w, r, loginCookie, "", -1)
	setCookie(w, r, sessionCookie, token, c.cfg.SessionTTL)
	c.log.Info("console sign-in", "key_name", key.Name)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) handleLogout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.sessions.end(ck.Value)
	}
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// Name is the API key's name, shown and recorded as the reviewer.
func (s *session) Name() string { return s.name }

// CSRF is the token every form of the session carries.
func (s *session) CSRF() string { return s.csrf }

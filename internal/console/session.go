package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"time"

	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/apikey"
)

// Cookie names. The session cookie holds a random token, never the API key; the server keeps only
// the token's SHA-256.
const (
	sessionCookie = "doppel_console_session"
	loginCookie   = "doppel_console_login"
	csrfField     = "csrf"
)

// session is one sign-in: the analyst's name and the scopes of their role as the account has it
// now, or the API key's name and its scopes as the configuration has them now (the name is
// recorded as the person who acted), and the CSRF token every form of the session carries.
type session struct {
	id     []byte // the SHA-256 of the cookie's token
	name   string
	role   analyst.Role // "" for an API key's session
	scopes []string
	csrf   string
	// flash is the message waiting for the session's next page when the request came; render
	// takes it only then, so a page without one costs no write.
	flash string
}

func (s *session) can(scope string) bool { return scope == "" || slices.Contains(s.scopes, scope) }

// SessionStore keeps console sign-ins where every instance sees them (postgres.Store implements
// it): a restart signs no one out, and behind a load balancer any instance serves any session. It
// is given the SHA-256 of a session's token, never the token, and the times from the console's
// clock.
type SessionStore interface {
	CreateSession(ctx context.Context, tokenSHA256 []byte, keyName, csrf string, now, expires time.Time) error
	CreateAnalystSession(ctx context.Context, tokenSHA256 []byte, analyst, csrf string, now, expires time.Time) error
	// Session returns a session that has not ended by now, with its analyst's role and state.
	Session(ctx context.Context, tokenSHA256 []byte, now time.Time) (analyst.Session, bool, error)
	SetSessionFlash(ctx context.Context, tokenSHA256 []byte, msg string) error
	// TakeSessionFlash returns the session's message and clears it.
	TakeSessionFlash(ctx context.Context, tokenSHA256 []byte) (string, error)
	EndSession(ctx context.Context, tokenSHA256 []byte) error
	EndSessionsBefore(ctx context.Context, now time.Time) (int64, error)
}

// sessions are the console's sign-ins, in the store. A session names its analyst, whose role and
// state are read with it on every request (a disabled account or a changed role applies at once),
// or its API key, whose scopes are read from the configuration on every request: a key taken out
// of the configuration ends its sessions at once.
type sessions struct {
	store SessionStore
	keys  []apikey.Key
	ttl   time.Duration
	now   func() time.Time
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenID(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// create starts a session for key and returns its cookie token; the sessions that ended are
// swept first, so the table holds live ones only.
func (ss *sessions) create(ctx context.Context, key apikey.Key) (string, error) {
	now := ss.now()
	if _, err := ss.store.EndSessionsBefore(ctx, now); err != nil {
		return "", err
	}
	token := randomToken()
	if err := ss.store.CreateSession(ctx, tokenID(token), key.Name, randomToken(), now, now.Add(ss.ttl)); err != nil {
		return "", err
	}
	return token, nil
}

// createForAnalyst is create for an analyst signed in by password or single sign-on.
func (ss *sessions) createForAnalyst(ctx context.Context, name string) (string, error) {
	now := ss.now()
	if _, err := ss.store.EndSessionsBefore(ctx, now); err != nil {
		return "", err
	}
	token := randomToken()
	if err := ss.store.CreateAnalystSession(ctx, tokenID(token), name, randomToken(), now, now.Add(ss.ttl)); err != nil {
		return "", err
	}
	return token, nil
}

// get returns the live session of token, nil when there is none (ended, signed out, unknown, or
// its key no longer configured).
func (ss *sessions) get(ctx context.Context, token string) (*session, error) {
	id := tokenID(token)
	rec, ok, err := ss.store.Session(ctx, id, ss.now())
	if err != nil || !ok {
		return nil, err
	}
	if rec.Analyst != "" {
		if rec.Disabled || !rec.Role.Valid() {
			return nil, ss.store.EndSession(ctx, id)
		}
		return &session{id: id, name: rec.Analyst, role: rec.Role, scopes: rec.Role.Scopes(), csrf: rec.CSRF, flash: rec.Flash}, nil
	}
	i := slices.IndexFunc(ss.keys, func(k apikey.Key) bool { return k.Name == rec.KeyName })
	if i < 0 {
		return nil, ss.store.EndSession(ctx, id)
	}
	return &session{id: id, name: rec.KeyName, scopes: ss.keys[i].Scopes, csrf: rec.CSRF, flash: rec.Flash}, nil
}

// setCookie writes a console cookie: HttpOnly, SameSite=Strict, scoped to the console. Behind TLS
// (DOPPEL_PUBLIC_URL https, Config.SecureCookies) it is Secure and named with the __Host- prefix,
// which browsers accept only from a secure origin, for the whole host (Path=/) and without a
// Domain: no other host or plain-HTTP page can set or shadow it. Without it the cookie is Secure
// only when this request itself came over TLS. maxAge < 0 deletes it.
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	ck := &http.Cookie{Name: c.cookieName(name), Value: value, Path: Path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if c.cfg.SecureCookies {
		ck.Secure, ck.Path = true, "/"
	}
	if maxAge < 0 {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, ck)
}

// cookieName is the name a console cookie goes by: with the __Host- prefix behind TLS.
func (c *Console) cookieName(name string) string {
	if c.cfg.SecureCookies {
		return "__Host-" + name
	}
	return name
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
		if ck, err := r.Cookie(c.cookieName(sessionCookie)); err == nil {
			var err error
			if s, err = c.sessions.get(r.Context(), ck.Value); err != nil {
				c.log.Error("console: read session", "error", err)
				c.fail(w, r, http.StatusServiceUnavailable, "The console cannot reach its database. Try again shortly.")
				return
			}
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
			c.fail(w, r, http.StatusForbidden, s.lacks(scope))
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

type loginPage struct {
	CSRF  string
	Error string
	// Name is the name typed in the failed attempt; SSO offers single sign-on.
	Name string
	SSO  bool
}

// handleLoginPage shows the sign-in form with a one-off token, also set as a cookie, that the
// POST must echo: a page elsewhere cannot sign a browser in under someone else's key.
func (c *Console) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := randomToken()
	c.setCookie(w, r, loginCookie, token, 10*time.Minute)
	c.render(w, r, status, "login", page{Title: "Sign in", Data: loginPage{CSRF: token, Error: msg, SSO: c.sso != nil,
		Name: nameTyped(r)}})
}

// handleLogin exchanges an API key for a session cookie. The key travels only in this POST's body
// and is neither logged nor kept.
func (c *Console) handleLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	ck, err := r.Cookie(c.cookieName(loginCookie))
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue(csrfField))) != 1 {
		c.showLogin(w, r, http.StatusForbidden, "The sign-in form expired. Try again.")
		return
	}
	if r.PostForm.Has("name") {
		c.handlePasswordLogin(w, r)
		return
	}
	if retryAfter, blocked := c.cfg.SignIn.Blocked(r); blocked {
		w.Header().Set("Retry-After", retryAfter)
		c.showLogin(w, r, http.StatusTooManyRequests, "Too many failed sign-ins from this address: try again in "+retryAfter+" s.")
		return
	}
	key, ok := apikey.Match(c.cfg.APIKeys, r.PostFormValue("apiKey"))
	if !ok {
		c.cfg.SignIn.Failed(r) // counted and logged there, without what was typed
		c.showLogin(w, r, http.StatusUnauthorized, "That API key is not known.")
		return
	}
	if !key.HasScope(apikey.ScopeRead) {
		c.showLogin(w, r, http.StatusForbidden, "That API key lacks the read scope the console needs.")
		return
	}
	token, err := c.sessions.create(r.Context(), key)
	if err != nil {
		c.log.Error("console: create session", "error", err)
		c.showLogin(w, r, http.StatusServiceUnavailable, "The console cannot reach its database. Try again shortly.")
		return
	}
	c.setCookie(w, r, loginCookie, "", -1)
	c.setCookie(w, r, sessionCookie, token, c.cfg.SessionTTL)
	c.log.Info("console sign-in", "key_name", key.Name)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) handleLogout(w http.ResponseWriter, r *http.Request) {
	if err := c.cfg.Store.EndSession(r.Context(), sessionOf(r.Context()).id); err != nil {
		c.log.Error("console: end session", "error", err)
		c.fail(w, r, http.StatusServiceUnavailable, "The console cannot reach its database: you are still signed in. Try again shortly.")
		return
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// Name is the analyst's or the API key's name, shown and recorded as the person who acted.
func (s *session) Name() string { return s.name }

// Role is the analyst's role; "API key" for a key's session.
func (s *session) Role() string {
	if s.role == "" {
		return "API key"
	}
	return string(s.role)
}

// ManagesAnalysts reports whether the session's analyst may list and disable analysts.
func (s *session) ManagesAnalysts() bool { return s.role.ManagesAnalysts() }

// lacks is the message for a session without scope.
func (s *session) lacks(scope string) string {
	if s.role != "" {
		return "Your role (" + string(s.role) + ") does not allow this: it needs the " + scope + " scope."
	}
	return "Your API key lacks the " + scope + " scope this needs."
}

// CSRF is the token every form of the session carries.
func (s *session) CSRF() string { return s.csrf }

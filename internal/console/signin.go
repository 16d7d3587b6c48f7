package console

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/doppelhq/doppel/internal/analyst"
)

// AnalystStore is what signing analysts in needs of the store (postgres.Store implements it).
type AnalystStore interface {
	analyst.Store
	analyst.ThrottleStore
	SetPasswordHash(ctx context.Context, name, hash string) error
}

// The answers of a failed sign-in by name and password. One message for an unknown name, a
// single-sign-on account and a wrong password: the page does not tell which names exist.
const (
	msgWrongPassword = "That name and password do not match an account."
	msgDatabase      = "The console cannot reach its database. Try again shortly."
)

// nameTyped is the name of a failed sign-in's form, shown again so only the password is retyped.
func nameTyped(r *http.Request) string {
	if r.Method != http.MethodPost {
		return ""
	}
	return strings.TrimSpace(r.PostFormValue("name"))
}

// throttleName is the name failures are counted under: the account's key when the name is valid,
// else what was typed (bounded), so a typo'd name is throttled too.
func throttleName(typed string) string {
	if n, err := analyst.NormalizeName(typed); err == nil {
		return n
	}
	typed = strings.ToLower(strings.TrimSpace(typed))
	if len(typed) > 64 {
		typed = typed[:64]
	}
	return typed
}

// handlePasswordLogin signs an analyst in with a local account's name and password (the form's
// CSRF token is checked by handleLogin). The attempt is counted first: a name or an address that
// failed too often is answered 429 with Retry-After before the password is looked at. Every
// attempt counts, whether the name exists or not, until it succeeds, and an unknown name costs the
// time of a wrong password.
func (c *Console) handlePasswordLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	typed, password := r.PostFormValue("name"), r.PostFormValue("password")
	name, addr := throttleName(typed), analyst.Address(r)
	wait, err := c.throttle.Attempt(ctx, name, addr)
	if err != nil {
		c.log.Error("console: read sign-in throttle", "error", err)
		c.showLogin(w, r, http.StatusServiceUnavailable, msgDatabase)
		return
	}
	if wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.showLogin(w, r, http.StatusTooManyRequests, fmt.Sprintf(
			"Too many failed sign-ins for this name or from this address. Try again in %s.", minutes(secs)))
		return
	}
	acct, err := c.cfg.Store.Analyst(ctx, name)
	switch {
	case errors.Is(err, analyst.ErrNotFound) || (err == nil && !acct.Local()):
		analyst.VerifyNobody(password)
		c.passwordFailed(w, r, addr)
		return
	case err != nil:
		c.log.Error("console: read analyst", "error", err)
		c.showLogin(w, r, http.StatusServiceUnavailable, msgDatabase)
		return
	case !analyst.VerifyPassword(acct.PasswordHash, password):
		c.passwordFailed(w, r, addr)
		return
	case acct.Disabled():
		// Said only to whoever knows the password.
		c.showLogin(w, r, http.StatusForbidden, "This account is disabled. Ask an admin of Doppel.")
		return
	}
	if err := c.throttle.Succeeded(ctx, name, addr); err != nil {
		c.log.Warn("console: clear sign-in failures", "error", err)
	}
	if analyst.NeedsRehash(acct.PasswordHash) {
		if h, err := analyst.HashPassword(password); err == nil {
			if err := c.cfg.Store.SetPasswordHash(ctx, name, h); err != nil {
				c.log.Warn("console: re-hash password", "error", err)
			}
		}
	}
	if c.startAnalystSession(w, r, acct.Name, "password") {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	}
}

// passwordFailed answers a failed sign-in (already counted by the throttle).
func (c *Console) passwordFailed(w http.ResponseWriter, r *http.Request, addr string) {
	c.log.Info("console sign-in refused", "method", "password", "address", addr)
	c.showLogin(w, r, http.StatusUnauthorized, msgWrongPassword)
}

// startAnalystSession signs name in (a session in the store, its cookie, the sign-in recorded)
// and reports whether it did; when it did not, it has answered with the sign-in page.
func (c *Console) startAnalystSession(w http.ResponseWriter, r *http.Request, name, method string) bool {
	token, err := c.sessions.createForAnalyst(r.Context(), name)
	if err != nil {
		c.log.Error("console: create session", "error", err)
		c.showLogin(w, r, http.StatusServiceUnavailable, msgDatabase)
		return false
	}
	if err := c.cfg.Store.SetLastSignIn(r.Context(), name, c.cfg.Now()); err != nil {
		c.log.Warn("console: record sign-in", "error", err)
	}
	c.setCookie(w, r, loginCookie, "", -1)
	c.setCookie(w, r, sessionCookie, token, c.cfg.SessionTTL)
	c.log.Info("console sign-in", "analyst", name, "method", method)
	return true
}

func minutes(secs int) string {
	if secs < 60 {
		return strconv.Itoa(secs) + " s"
	}
	return strconv.Itoa((secs+59)/60) + " min"
}

package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/doppelhq/doppel/internal/analyst"
)

// DefaultRoleClaim is the ID token claim read for an analyst's role when OIDCConfig.RoleClaim is
// empty: "roles", the name Microsoft Entra ID gives app roles and most providers can map groups to.
const DefaultRoleClaim = "roles"

// OIDCConfig configures single sign-on with an OpenID Connect provider.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; its discovery document is read at the first sign-in
	// (not at start-up, so a provider down does not stop Doppel).
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is where the provider sends the browser back: DOPPEL_PUBLIC_URL +
	// /console/sso/callback, registered with the provider.
	RedirectURL string
	// RoleClaim names the claim holding the role (DefaultRoleClaim when empty): a string, a list
	// of strings or an object whose keys are the values; a dotted name (realm_access.roles) walks
	// into objects. The highest of reviewer, lead and admin among its values is the role; a
	// person with none of them is refused.
	RoleClaim string
}

// sso is the console's single sign-on: the provider, found lazily, and the client's settings.
type sso struct {
	cfg OIDCConfig

	mu       sync.Mutex
	provider *oidc.Provider
}

func newSSO(cfg OIDCConfig) (*sso, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.RedirectURL == "" {
		return nil, errors.New("console: single sign-on needs the issuer, client id, client secret and redirect URL")
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = DefaultRoleClaim
	}
	return &sso{cfg: cfg}, nil
}

// client returns the provider's OAuth 2 settings and ID token verifier, reading its discovery
// document the first time (and again after a failure).
func (s *sso) client(ctx context.Context) (*oidc.Provider, *oauth2.Config, *oidc.IDTokenVerifier, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := oidc.NewProvider(ctx, s.cfg.Issuer)
		if err != nil {
			return nil, nil, nil, err
		}
		s.provider = p
	}
	oc := &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, RedirectURL: s.cfg.RedirectURL,
		Endpoint: s.provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	return s.provider, oc, s.provider.Verifier(&oidc.Config{ClientID: s.cfg.ClientID}), nil
}

// ssoCookie holds a sign-in's state, nonce and PKCE verifier between the redirect to the provider
// and the way back. It is SameSite=Lax, unlike the console's others, because the way back is a
// navigation from the provider's site, which a Strict cookie would not come with.
const ssoCookie = "doppel_console_sso"

func (c *Console) setSSOCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	ck := &http.Cookie{Name: c.cookieName(ssoCookie), Value: value, Path: Path + "/sso", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil, MaxAge: maxAge}
	if c.cfg.SecureCookies {
		ck.Secure, ck.Path = true, "/"
	}
	http.SetCookie(w, ck)
}

// handleSSOStart sends the browser to the provider: authorization code flow with PKCE (S256), a
// state bound to this browser by the cookie, and a nonce the ID token must carry back.
func (c *Console) handleSSOStart(w http.ResponseWriter, r *http.Request) {
	if c.sso == nil {
		c.showLogin(w, r, http.StatusNotFound, "Single sign-on is not set up here: sign in with your name and password.")
		return
	}
	_, oc, _, err := c.sso.client(r.Context())
	if err != nil {
		c.log.Error("console: reach the single sign-on provider", "error", err)
		c.showLogin(w, r, http.StatusBadGateway, "The single sign-on provider cannot be reached. Try again shortly.")
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	c.setSSOCookie(w, r, state+"."+nonce+"."+verifier, 600)
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusSeeOther)
}

// handleSSOCallback finishes the sign-in the provider sends back: the state checked against the
// cookie, the code exchanged with the PKCE verifier, the ID token verified (signature, issuer,
// audience, expiry, nonce), the name and role read from its claims (the userinfo endpoint fills
// those the ID token lacks), and the analyst recorded and signed in.
func (c *Console) handleSSOCallback(w http.ResponseWriter, r *http.Request) {
	if c.sso == nil {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	ck, cerr := r.Cookie(c.cookieName(ssoCookie))
	c.setSSOCookie(w, r, "", -1)
	q := r.URL.Query()
	parts := []string{}
	if cerr == nil {
		parts = strings.Split(ck.Value, ".")
	}
	if len(parts) != 3 || subtle.ConstantTimeCompare([]byte(parts[0]), []byte(q.Get("state"))) != 1 {
		c.showLogin(w, r, http.StatusBadRequest, "That single sign-on attempt expired or was not started here. Try again.")
		return
	}
	if e := q.Get("error"); e != "" {
		// The provider's words are logged, not shown: a link must not make the console say things.
		c.log.Warn("console: single sign-on refused by the provider", "error", clip(e, 100), "description", clip(q.Get("error_description"), 300))
		msg := "The single sign-on provider did not sign you in. Try again, or ask your identity provider's admin."
		if e == "access_denied" {
			msg = "The single sign-on provider denied access to Doppel. Ask your identity provider's admin for it."
		}
		c.showLogin(w, r, http.StatusUnauthorized, msg)
		return
	}
	nonce, verifier := parts[1], parts[2]
	provider, oc, idVerifier, err := c.sso.client(ctx)
	if err != nil {
		c.log.Error("console: reach the single sign-on provider", "error", err)
		c.showLogin(w, r, http.StatusBadGateway, "The single sign-on provider cannot be reached. Try again shortly.")
		return
	}
	xctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	token, err := oc.Exchange(xctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		c.log.Warn("console: single sign-on code exchange", "error", err)
		c.showLogin(w, r, http.StatusUnauthorized, "The single sign-on provider did not accept the sign-in. Try again.")
		return
	}
	rawID, _ := token.Extra("id_token").(string)
	idToken, err := idVerifier.Verify(xctx, rawID)
	if err != nil || subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(nonce)) != 1 {
		c.log.Warn("console: single sign-on ID token refused", "error", err)
		c.showLogin(w, r, http.StatusUnauthorized, "The single sign-on provider's answer could not be verified. Try again.")
		return
	}
	if idToken.AccessTokenHash != "" {
		// The access token asks the userinfo endpoint below: it must be the one the ID token names.
		if err := idToken.VerifyAccessToken(token.AccessToken); err != nil {
			c.log.Warn("console: single sign-on access token refused", "error", err)
			c.showLogin(w, r, http.StatusUnauthorized, "The single sign-on provider's answer could not be verified. Try again.")
			return
		}
	}
	claims := map[string]any{}
	if err := idToken.Claims(&claims); err != nil {
		c.showLogin(w, r, http.StatusUnauthorized, "The single sign-on provider's answer could not be read. Try again.")
		return
	}
	if claimAt(claims, c.sso.cfg.RoleClaim) == nil || (claims["preferred_username"] == nil && claims["email"] == nil) {
		if ui, err := provider.UserInfo(xctx, oauth2.StaticTokenSource(token)); err == nil && ui.Subject == idToken.Subject {
			more := map[string]any{}
			if ui.Claims(&more) == nil {
				for k, v := range more {
					if _, ok := claims[k]; !ok {
						claims[k] = v
					}
				}
			}
		}
	}
	name, err := analyst.NormalizeName(personName(claims))
	if err != nil {
		c.showLogin(w, r, http.StatusForbidden, "Your single sign-on name cannot name an analyst here: "+clip(err.Error(), 200))
		return
	}
	role, ok := RoleFromClaim(claimAt(claims, c.sso.cfg.RoleClaim))
	if !ok {
		c.log.Info("console sign-in refused", "method", "sso", "analyst", name, "reason", "no role")
		c.showLogin(w, r, http.StatusForbidden, fmt.Sprintf("Your single sign-on account has no Doppel role: ask for reviewer, lead or admin in the %q claim.",
			c.sso.cfg.RoleClaim))
		return
	}
	acct, err := c.cfg.Store.UpsertSSOAnalyst(ctx, analyst.Account{Name: name, Role: role, OIDCIssuer: idToken.Issuer, OIDCSubject: idToken.Subject})
	switch {
	case errors.Is(err, analyst.ErrExists):
		c.showLogin(w, r, http.StatusForbidden, "The name "+name+" belongs to another Doppel account: ask an admin of Doppel.")
		return
	case err != nil:
		c.log.Error("console: record single-sign-on analyst", "error", err)
		c.showLogin(w, r, http.StatusServiceUnavailable, msgDatabase)
		return
	case acct.Disabled():
		c.showLogin(w, r, http.StatusForbidden, "This account is disabled in Doppel. Ask an admin of Doppel.")
		return
	}
	if !c.startAnalystSession(w, r, acct.Name, "sso") {
		return
	}
	// A page, not a redirect: the browser came from the provider's site, and a redirect would carry
	// that cross-site navigation on to the console, which the SameSite=Strict session cookie would
	// not come with. The page's own navigation is the console's.
	c.render(w, r, http.StatusOK, "signedin", page{Title: "Signed in", Nav: "none", Data: acct.Name})
}

// personName is the name an analyst goes by: preferred_username, else a verified email (one the
// provider says is unverified could be anyone's), else the subject.
func personName(claims map[string]any) string {
	if s, ok := claims["preferred_username"].(string); ok && s != "" {
		return s
	}
	if s, ok := claims["email"].(string); ok && s != "" && claims["email_verified"] != false {
		return s
	}
	s, _ := claims["sub"].(string)
	return s
}

// claimAt returns the claim called name, or the one a dotted name reaches through objects.
func claimAt(claims map[string]any, name string) any {
	if v, ok := claims[name]; ok {
		return v
	}
	var cur any = claims
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// RoleFromClaim reads a role claim's value: a string (one role, or several separated by spaces
// or commas), a list of strings, or an object keyed by role. The highest known role among the
// values wins (a member of both the reviewers' and the leads' group is a lead); values that are
// no role are ignored; no known role is false, and the sign-in is refused.
func RoleFromClaim(v any) (analyst.Role, bool) {
	var values []string
	switch t := v.(type) {
	case string:
		values = strings.FieldsFunc(t, func(r rune) bool { return r == ' ' || r == ',' })
	case []any:
		for _, e := range t {
			if s, ok := e.(string); ok {
				values = append(values, s)
			}
		}
	case map[string]any:
		for k := range t {
			values = append(values, k)
		}
	}
	best := -1
	for _, s := range values {
		if i := slices.Index(analyst.Roles, analyst.Role(strings.ToLower(strings.TrimSpace(s)))); i > best {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return analyst.Roles[best], true
}

func clip(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

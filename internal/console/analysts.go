package console

import (
	"errors"
	"net/http"

	"github.com/doppelhq/doppel/internal/analyst"
)

// requireAdmin lets through the sessions whose analyst manages analysts (analyst.Role's
// ManagesAnalysts); an API key's session never does: managing people is a person's act.
func (c *Console) requireAdmin(next http.HandlerFunc) http.Handler {
	return c.requireSession(func(w http.ResponseWriter, r *http.Request) {
		if !sessionOf(r.Context()).role.ManagesAnalysts() {
			c.fail(w, r, http.StatusForbidden, "Only an admin manages analysts.")
			return
		}
		next(w, r)
	}, "")
}

func (c *Console) handleAnalysts(w http.ResponseWriter, r *http.Request) {
	accounts, err := c.cfg.Store.Analysts(r.Context())
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "analysts", page{Title: "Analysts", Data: accounts})
}

// handleDisableAnalyst disables an analyst and ends their sessions, recording the admin who did.
func (c *Console) handleDisableAnalyst(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	name := r.PathValue("name")
	if name == s.name {
		c.fail(w, r, http.StatusBadRequest, "You cannot disable yourself: ask another admin.")
		return
	}
	ended, err := c.cfg.Store.DisableAnalyst(r.Context(), name, s.name, c.cfg.Now())
	if errors.Is(err, analyst.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, "No analyst has that name.")
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.log.Info("console: analyst disabled", "analyst", name, "disabled_by", s.name, "sessions_ended", ended)
	c.setFlash(r, s, "Disabled "+name+": their sessions have ended.")
	http.Redirect(w, r, "/console/analysts", http.StatusSeeOther)
}

// Package redact hides the secrets a value carries before it is shown in a log, an error or
// `doppel config check`. It is a leaf that imports nothing of Doppel's, so that config (which
// prints settings) and postgres (which reports connection failures) share one rule for where a
// password sits in a database URL without one adapter importing the other.
package redact

import "net/url"

// DatabaseURL returns the database URL with any password replaced, for logs, errors and `doppel
// config check`: the user:pass@ form and the ?password= (and ?sslpassword=) parameters alike. It
// keeps the rest (user, host, database, parameters) because that is what an operator needs to
// check where the URL points.
func DatabaseURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparseable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); q.Has("password") || q.Has("sslpassword") {
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

package config_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
)

// Single sign-on needs its three settings together and the public URL the provider sends people
// back to; start-up says which is missing.
func TestSingleSignOnSettingsComeTogetherWithThePublicURL(t *testing.T) {
	t.Parallel()
	load := func(extra map[string]string) (config.Config, error) {
		vals := map[string]string{}
		for k, v := range minimal {
			vals[k] = v
		}
		for k, v := range extra {
			vals[k] = v
		}
		l, err := config.LoadEnv("", vals)
		return l.Config, err
	}
	cfg, err := load(nil)
	require.NoError(t, err)
	require.Empty(t, cfg.OIDCIssuer, "no single sign-on by default")
	require.Equal(t, "roles", cfg.OIDCRoleClaim)

	sso := map[string]string{"DOPPEL_OIDC_ISSUER": "https://login.example.com/realms/risk", "DOPPEL_OIDC_CLIENT_ID": "doppel-console",
		"DOPPEL_OIDC_CLIENT_SECRET": "s3cret", "DOPPEL_PUBLIC_URL": "https://doppel.example.com/"}
	cfg, err = load(sso)
	require.NoError(t, err)
	require.Equal(t, "https://doppel.example.com/console/sso/callback", cfg.OIDCRedirectURL())

	_, err = load(map[string]string{"DOPPEL_OIDC_ISSUER": "https://login.example.com"})
	require.ErrorContains(t, err, "DOPPEL_OIDC_ISSUER, DOPPEL_OIDC_CLIENT_ID and DOPPEL_OIDC_CLIENT_SECRET together")
	noURL := map[string]string{}
	for k, v := range sso {
		noURL[k] = v
	}
	delete(noURL, "DOPPEL_PUBLIC_URL")
	_, err = load(noURL)
	require.ErrorContains(t, err, "single sign-on needs DOPPEL_PUBLIC_URL")
	sso["DOPPEL_OIDC_ISSUER"] = "login.example.com"
	_, err = load(sso)
	require.ErrorContains(t, err, "DOPPEL_OIDC_ISSUER must be the provider's issuer URL")
}

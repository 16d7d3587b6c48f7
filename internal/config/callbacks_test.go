package config_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
)

func TestCallbackSigningSecretsAreListedAndMasked(t *testing.T) {
	t.Parallel()
	first := "whsec_" + base64.StdEncoding.EncodeToString([]byte("first-signing-key-0123456789abc"))
	second := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	cfg, err := config.Load("", env(withMinimal(map[string]string{
		"DOPPEL_CALLBACK_SIGNING_SECRETS": " " + first + " , " + second + ",",
	})))
	require.NoError(t, err)
	require.Equal(t, []string{first, second}, cfg.CallbackSigningSecrets, "two at once while rotating")
	require.True(t, cfg.CallbackTokenInQuery, "the vendor can only send ?token=: on by default")

	var out bytes.Buffer
	require.NoError(t, config.Loaded{Config: cfg}.Describe(&out))
	require.Contains(t, out.String(), "DOPPEL_CALLBACK_SIGNING_SECRETS=*****")
	require.NotContains(t, out.String(), "MfKQ9r8")
	require.Regexp(t, `(?m)^DOPPEL_CALLBACK_TOKEN_IN_QUERY=true +# default$`, out.String())

	cfg, err = config.Load("", env(withMinimal(map[string]string{"DOPPEL_CALLBACK_TOKEN_IN_QUERY": "false"})))
	require.NoError(t, err)
	require.False(t, cfg.CallbackTokenInQuery)
}

func TestBadSigningSecretsStopStartUpSayingWhatToSetWithoutEchoingThem(t *testing.T) {
	t.Parallel()
	good := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	for _, tc := range []struct{ secret, want string }{
		{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "entry 2 of 2 does not start with whsec_"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!", "entry 2 of 2 is not whsec_ followed by standard base64"},
		{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "is not whsec_ followed by standard base64"},
		{"whsec_" + base64.RawURLEncoding.EncodeToString([]byte("a key written in url-safe base64?")), "standard base64"},
		{"whsec_" + base64.StdEncoding.EncodeToString([]byte("sixteen-byte-key")), "holds a key of 16 bytes, too short"},
		{"whsec_", "holds a key of 0 bytes"},
	} {
		_, err := config.Load("", env(withMinimal(map[string]string{"DOPPEL_CALLBACK_SIGNING_SECRETS": good + "," + tc.secret})))
		require.Error(t, err, tc.secret)
		msg := err.Error()
		require.Contains(t, msg, "DOPPEL_CALLBACK_SIGNING_SECRETS", tc.secret)
		require.Contains(t, msg, tc.want, tc.secret)
		require.Contains(t, msg, "whsec_$(openssl rand -base64 32)", "says how to make one")
		require.NotContains(t, msg, strings.TrimPrefix(good, "whsec_"))
		if key := strings.TrimPrefix(tc.secret, "whsec_"); key != "" {
			require.NotContains(t, msg, key)
		}
	}
	_, err := config.Load("", env(withMinimal(map[string]string{"DOPPEL_CALLBACK_TOKEN_IN_QUERY": "no way"})))
	require.ErrorContains(t, err, "DOPPEL_CALLBACK_TOKEN_IN_QUERY")
}

func TestSigningSecretsInTheFileMayBeAListOrOneStringAndAreNeverQuoted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("first-signing-key-0123456789abc"))
	for _, text := range []string{
		"callback_signing_secrets: [" + good + ", " + other + "]\n",
		"callback_signing_secrets: " + good + ", " + other + "\n", // as the variable takes it
	} {
		path := filepath.Join(dir, "doppel.yaml")
		require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
		cfg, err := config.Load(path, env(minimal))
		require.NoError(t, err, text)
		require.Equal(t, []string{good, other}, cfg.CallbackSigningSecrets)
	}
	path := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("callback_signing_secrets: whsec_Zm9v!\n"), 0o600))
	_, err := config.Load(path, env(minimal))
	require.ErrorContains(t, err, "DOPPEL_CALLBACK_SIGNING_SECRETS entry 1 of 1 is not whsec_ followed by standard base64")
	require.NotContains(t, err.Error(), "Zm9v")
}

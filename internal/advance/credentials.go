package advance

import "context"

// CheckCredentials asks the vendor for a token, the cheapest call that proves the base URL and the
// keys work (`doppel config check --connect`). Nothing is billed and the token is not kept.
func (c *Client) CheckCredentials(ctx context.Context) error {
	_, err := c.fetchToken(ctx)
	return err
}

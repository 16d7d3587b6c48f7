package retention

// RestAfter is restAfter, for the external tests.
var RestAfter = restAfter

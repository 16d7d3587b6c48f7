package advancesim

import "net/http"

// routes lists every route of the simulator in one place.
func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()

	// The vendor API, as documented.
	mux.HandleFunc("POST /openapi/auth/ticket/v1/generate-token", s.handleGenerateToken)
	mux.HandleFunc("POST /intl/openapi/identity-risk/idvs-h5/ekyc/v1/face-search", s.handleFaceSearch)
	mux.HandleFunc("POST /intl/openapi/identity-risk/idvs-h5/ekyc/v1/get-result", s.handleGetResult)
	mux.HandleFunc("POST /intl/openapi/identity-risk/idvs-h5/ekyc/v1/face-search-enroll", s.handleEnroll)
	mux.HandleFunc("POST "+ClearDataPath, s.handleClearData)

	// The control surface for tests, the benchmark and the soak.
	mux.HandleFunc("POST /sim/sessions", s.handleAddSession)
	mux.HandleFunc("POST /sim/sessions/batch", s.handleAddSessions)
	mux.HandleFunc("POST /sim/sessions/{signatureId}/complete", s.handleComplete)
	mux.HandleFunc("GET /sim/stats", s.handleStats)
	mux.HandleFunc("POST /sim/reset-stats", s.handleResetStats)
	mux.HandleFunc("GET /sim/faults", s.handleGetFaults)
	mux.HandleFunc("PUT /sim/faults", s.handlePutFaults)
	mux.HandleFunc("POST /sim/tokens/revoke", s.handleRevokeTokens)
	mux.HandleFunc("GET /sim/images/{signatureId}/{kind}", s.handleImage)
	mux.HandleFunc("GET /healthz", s.handleHealthz)

	return mux
}

package advancesim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// evidenceData is the part of get-result's data the evidence lives in.
type evidenceData struct {
	OverallResult string `json:"overallResult"`
	FaceDetail    *struct {
		FaceResult string `json:"faceResult"`
		FaceImage  string `json:"faceImage"`
	} `json:"faceDetail"`
	DocDetail *struct {
		DocType    string `json:"docType"`
		FrontImage string `json:"frontImage"`
		OCRResult  struct {
			FullName string `json:"fullName"`
			Birthday string `json:"birthday"`
			IDNumber string `json:"idNumber"`
		} `json:"ocrResult"`
	} `json:"docDetail"`
}

func (b *testBundle) evidence(t *testing.T, tok, sig, imageType string) evidenceData {
	t.Helper()
	body := `{"signatureId":"` + sig + `"}`
	if imageType != "" {
		body = `{"signatureId":"` + sig + `","returnImageType":"` + imageType + `"}`
	}
	a := b.post(t, pathResult, tok, body)
	require.Equal(t, "SUCCESS", a.env.Code, string(a.raw))
	var d evidenceData
	require.NoError(t, json.Unmarshal(a.env.Data, &d), string(a.env.Data))
	return d
}

func TestGetResultEvidence(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ids := b.seed(t,
		Session{UserID: "ring-a", Face: "farm", OverallResult: ResultPass},
		Session{UserID: "ring-b", Face: "farm", OverallResult: ResultPass},
		Session{UserID: "alone", Face: "own", OverallResult: ResultPass},
		// One person verifying under two accounts with one document.
		Session{UserID: "back-1", Face: "returner", Person: "p-1", OverallResult: ResultPass},
		Session{UserID: "back-2", Face: "returner", Person: "p-1", OverallResult: ResultPass},
		Session{UserID: "pending", Face: "farm", OverallResult: ResultIncomplete},
		Session{UserID: "failed", Face: "farm", OverallResult: ResultFail},
	)
	tok := b.token(t)
	ev := make([]evidenceData, len(ids))
	for i, sig := range ids {
		ev[i] = b.evidence(t, tok, sig, "BASE64")
	}

	t.Run("one picture per face", func(t *testing.T) {
		require.Equal(t, ev[0].FaceDetail.FaceImage, ev[1].FaceDetail.FaceImage, "two accounts with one face show one picture")
		require.NotEqual(t, ev[0].FaceDetail.FaceImage, ev[2].FaceDetail.FaceImage)
		raw, err := base64.StdEncoding.DecodeString(ev[0].FaceDetail.FaceImage)
		require.NoError(t, err)
		img, err := png.Decode(bytes.NewReader(raw))
		require.NoError(t, err)
		require.Equal(t, 96, img.Bounds().Dx())
	})
	t.Run("accounts of a ring show different documents", func(t *testing.T) {
		a, b := ev[0].DocDetail.OCRResult, ev[1].DocDetail.OCRResult
		require.NotEmpty(t, a.FullName)
		require.NotEqual(t, a.IDNumber, b.IDNumber)
		require.NotEqual(t, a.Birthday, b.Birthday)
		_, err := time.Parse("2006-01-02", a.Birthday)
		require.NoError(t, err)
	})
	t.Run("one person shows one document", func(t *testing.T) {
		require.Equal(t, ev[3].DocDetail.OCRResult, ev[4].DocDetail.OCRResult)
	})
	t.Run("nothing before the verification completes", func(t *testing.T) {
		require.Nil(t, ev[5].FaceDetail)
		require.Nil(t, ev[5].DocDetail)
	})
	t.Run("a failed verification says so", func(t *testing.T) {
		require.Equal(t, "FAIL", ev[6].FaceDetail.FaceResult)
	})
	t.Run("URL is the default and its link serves the picture until it expires", func(t *testing.T) {
		d := b.evidence(t, tok, ids[0], "")
		require.Contains(t, d.FaceDetail.FaceImage, "/sim/images/")
		resp, err := http.Get(d.FaceDetail.FaceImage)
		require.NoError(t, err)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		want, _ := base64.StdEncoding.DecodeString(ev[0].FaceDetail.FaceImage)
		require.Equal(t, want, got)

		b.clock.Add(25 * time.Hour)
		resp, err = http.Get(d.FaceDetail.FaceImage)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
}

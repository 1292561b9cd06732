package api

import (
	"net/http"

	"github.com/sterad/sterad"
)

// BackupRequest is the body of POST /v1/store/backup.
type BackupRequest struct {
	Recipients []string `json:"recipients"` // age recipients (age1…)
}

// RotateRequest is the body of POST /v1/keys/rotate.
type RotateRequest struct {
	KEKFile string `json:"kek_file"` // the new key-encryption key, already created
}

// handleBackup streams an encrypted hot backup of the store. A failure
// after the first byte aborts the response, so a client never takes a
// cut-off copy for a whole one.
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	var req BackupRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	if len(req.Recipients) == 0 {
		WriteError(w, sterad.Errorf(sterad.EInvalid, "missing_recipient", "give {\"recipients\": [\"age1…\"]}"))
		return
	}
	ww := &firstWrite{ResponseWriter: w}
	if err := s.Store.Backup(r.Context(), ww, req.Recipients); err != nil {
		if !ww.started {
			WriteError(w, err)
			return
		}
		s.Logger.Error("backup failed after it started", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// handleRotate re-wraps the store's keys under a new key-encryption key.
func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	var req RotateRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteError(w, err)
		return
	}
	ans, err := s.Store.RotateKEK(r.Context(), req.KEKFile)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

// firstWrite sets the backup's content type on its first byte.
type firstWrite struct {
	http.ResponseWriter
	started bool
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if !f.started {
		f.started = true
		f.Header().Set("Content-Type", "application/octet-stream")
	}
	return f.ResponseWriter.Write(p)
}

// handleRetention runs the retention now (?dry_run=true: only reports).
func (s *Server) handleRetention(w http.ResponseWriter, r *http.Request) {
	dry := r.URL.Query().Get("dry_run")
	if dry != "" && dry != "true" && dry != "false" {
		WriteError(w, sterad.Errorf(sterad.EInvalid, "invalid_dry_run", "dry_run is true or false"))
		return
	}
	rep, err := s.Store.Retention(r.Context(), dry == "true")
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

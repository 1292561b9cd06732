package console

import "net/http"

func (s *Server) nightAuditRoutes(mux *http.ServeMux) {}

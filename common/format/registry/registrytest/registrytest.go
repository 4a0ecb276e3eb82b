// Package registrytest is a small Confluent schema registry for tests: no
// registry server installs here, so the tests talk to this one, which
// implements the documented REST endpoints culvert's client calls (see
// package registry) with the registry's JSON bodies and error codes. It
// is not a registry: it checks compatibility only when told to refuse.
package registrytest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// Server is a running test registry.
type Server struct {
	*httptest.Server
	// Username and Password, when set, are required (basic auth).
	Username, Password string

	mu       sync.Mutex
	schemas  []string         // by id-1
	types    []string         // schemaType by id-1, "" for Avro
	subjects map[string][]int // subject → ids by version-1
	refuse   map[string]string
	down     bool
	requests int
}

// New starts a registry; Close stops it.
func New() *Server {
	s := &Server{subjects: map[string][]int{}, refuse: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// NewTLS starts a registry on https, its certificate signed by the
// server's own CA (Certificate).
func NewTLS() *Server {
	s := &Server{subjects: map[string][]int{}, refuse: map[string]string{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

// Add registers the Avro schema under subject and returns its id.
func (s *Server) Add(subject, schema string) int {
	return s.AddType(subject, schema, "")
}

// AddType registers schema of schemaType typ ("PROTOBUF"; "" or "AVRO"
// for Avro) under subject and returns its id.
func (s *Server) AddType(subject, schema, typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(subject, schema, typ)
}

func (s *Server) add(subject, schema, typ string) int {
	if typ == "AVRO" {
		typ = ""
	}
	id := 0
	for i, t := range s.schemas {
		if t == schema && s.types[i] == typ {
			id = i + 1
		}
	}
	if id == 0 {
		s.schemas = append(s.schemas, schema)
		s.types = append(s.types, typ)
		id = len(s.schemas)
	}
	for _, v := range s.subjects[subject] {
		if v == id {
			return id
		}
	}
	s.subjects[subject] = append(s.subjects[subject], id)
	return id
}

// Refuse makes registering a new schema under subject fail with HTTP 409
// and message, as an incompatible schema does.
func (s *Server) Refuse(subject, message string) {
	s.mu.Lock()
	s.refuse[subject] = message
	s.mu.Unlock()
}

// Down makes every request fail with HTTP 503 (true) or be answered again.
func (s *Server) Down(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Requests returns how many requests were answered.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Subject returns the ids registered under subject, oldest first.
func (s *Server) Subject(subject string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.subjects[subject]...)
}

func fail(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error_code": code, "message": msg})
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	json.NewEncoder(w).Encode(v)
}

// body is the JSON of schema id, added to m: its text and, unless it is
// Avro (the registry leaves it out then), its schemaType.
func (s *Server) body(id int, m map[string]any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m["schema"] = s.schemas[id-1]
	if t := s.types[id-1]; t != "" {
		m["schemaType"] = t
	}
	return m
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.down {
		fail(w, http.StatusServiceUnavailable, 50003, "registry down (test)")
		return
	}
	if s.Username != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != s.Username || p != s.Password {
			fail(w, http.StatusUnauthorized, 40101, "Unauthorized")
			return
		}
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "subjects":
		names := []string{}
		for n := range s.subjects {
			names = append(names, n)
		}
		answer(w, names)
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "schemas" && parts[1] == "ids":
		id, err := strconv.Atoi(parts[2])
		if err != nil || id < 1 || id > len(s.schemas) {
			fail(w, http.StatusNotFound, 40403, "Schema "+parts[2]+" not found")
			return
		}
		answer(w, s.body(id, nil))
	case r.Method == http.MethodGet && len(parts) == 4 && parts[0] == "subjects" && parts[2] == "versions":
		ids := s.subjects[parts[1]]
		if len(ids) == 0 {
			fail(w, http.StatusNotFound, 40401, "Subject '"+parts[1]+"' not found.")
			return
		}
		v := len(ids)
		if parts[3] != "latest" && parts[3] != "-1" {
			n, err := strconv.Atoi(parts[3])
			if err != nil || n < 1 || n > len(ids) {
				fail(w, http.StatusNotFound, 40402, "Version "+parts[3]+" not found.")
				return
			}
			v = n
		}
		id := ids[v-1]
		answer(w, s.body(id, map[string]any{"subject": parts[1], "version": v, "id": id}))
	case r.Method == http.MethodPost && len(parts) >= 2 && parts[0] == "subjects":
		var body struct {
			Schema     string `json:"schema"`
			SchemaType string `json:"schemaType"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Schema == "" {
			fail(w, http.StatusUnprocessableEntity, 42201, "Invalid schema")
			return
		}
		if body.SchemaType == "AVRO" {
			body.SchemaType = ""
		}
		subject := parts[1]
		if len(parts) == 3 && parts[2] == "versions" {
			for _, id := range s.subjects[subject] {
				if s.schemas[id-1] == body.Schema && s.types[id-1] == body.SchemaType {
					answer(w, map[string]any{"id": id})
					return
				}
			}
			if msg, ok := s.refuse[subject]; ok {
				fail(w, http.StatusConflict, 409, msg)
				return
			}
			answer(w, map[string]any{"id": s.add(subject, body.Schema, body.SchemaType)})
			return
		}
		ids := s.subjects[subject]
		if len(ids) == 0 {
			fail(w, http.StatusNotFound, 40401, "Subject '"+subject+"' not found.")
			return
		}
		for v, id := range ids {
			if s.schemas[id-1] == body.Schema && s.types[id-1] == body.SchemaType {
				answer(w, s.body(id, map[string]any{"subject": subject, "version": v + 1, "id": id}))
				return
			}
		}
		fail(w, http.StatusNotFound, 40403, "Schema not found")
	default:
		fail(w, http.StatusNotFound, 404, "no such endpoint in the test registry: "+r.Method+" "+r.URL.Path)
	}
}

// Package registrytest is a small Confluent schema registry for tests: no
// registry server installs here, so the tests talk to this one, which
// implements the documented REST endpoints culvert's client calls (see
// package registry) with the registry's JSON bodies and error codes,
// schema references included. It is not a registry: it checks
// compatibility only when told to refuse, and of a schema's references
// only that each names a registered subject and version.
package registrytest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Reference is a schema reference: the name the referring schema uses for
// the other, and the subject and version it is registered under.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// Server is a running test registry.
type Server struct {
	*httptest.Server
	// Username and Password, when set, are required (basic auth).
	Username, Password string

	mu       sync.Mutex
	schemas  []string         // by id-1
	types    []string         // schemaType by id-1, "" for Avro
	refs     [][]Reference    // references by id-1
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
	return s.AddRefs(subject, schema, typ)
}

// AddRefs registers schema of schemaType typ with the references refs
// under subject and returns its id.
func (s *Server) AddRefs(subject, schema, typ string, refs ...Reference) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(subject, schema, typ, refs)
}

// find returns the id of schema of type typ with refs, 0 when there is
// none.
func (s *Server) find(schema, typ string, refs []Reference) int {
	for i, t := range s.schemas {
		if t == schema && s.types[i] == typ && slices.Equal(s.refs[i], refs) {
			return i + 1
		}
	}
	return 0
}

func (s *Server) add(subject, schema, typ string, refs []Reference) int {
	if typ == "AVRO" {
		typ = ""
	}
	if len(refs) == 0 {
		refs = nil
	}
	id := s.find(schema, typ, refs)
	if id == 0 {
		s.schemas = append(s.schemas, schema)
		s.types = append(s.types, typ)
		s.refs = append(s.refs, refs)
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
// Avro (the registry leaves it out then), its schemaType, and its
// references when it has any.
func (s *Server) body(id int, m map[string]any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	m["schema"] = s.schemas[id-1]
	if t := s.types[id-1]; t != "" {
		m["schemaType"] = t
	}
	if r := s.refs[id-1]; len(r) > 0 {
		m["references"] = r
	}
	return m
}

// badReference returns why one of refs does not name a registered
// subject and version, "" when they all do.
func (s *Server) badReference(refs []Reference) string {
	for _, r := range refs {
		ids := s.subjects[r.Subject]
		if r.Name == "" || r.Version < 1 || r.Version > len(ids) {
			return "Invalid schema: reference " + strconv.Quote(r.Name) + " to subject " + strconv.Quote(r.Subject) + " version " + strconv.Itoa(r.Version) + " is not registered"
		}
	}
	return ""
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
	// Split the escaped path: a subject may hold a / (escaped %2F),
	// such as a .proto import path.
	parts := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
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
			Schema     string      `json:"schema"`
			SchemaType string      `json:"schemaType"`
			References []Reference `json:"references"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Schema == "" {
			fail(w, http.StatusUnprocessableEntity, 42201, "Invalid schema")
			return
		}
		if body.SchemaType == "AVRO" {
			body.SchemaType = ""
		}
		if len(body.References) == 0 {
			body.References = nil
		}
		same := func(id int) bool {
			return s.schemas[id-1] == body.Schema && s.types[id-1] == body.SchemaType && slices.Equal(s.refs[id-1], body.References)
		}
		subject := parts[1]
		if len(parts) == 3 && parts[2] == "versions" {
			for _, id := range s.subjects[subject] {
				if same(id) {
					answer(w, map[string]any{"id": id})
					return
				}
			}
			if msg := s.badReference(body.References); msg != "" {
				fail(w, http.StatusUnprocessableEntity, 42201, msg)
				return
			}
			if msg, ok := s.refuse[subject]; ok {
				fail(w, http.StatusConflict, 409, msg)
				return
			}
			answer(w, map[string]any{"id": s.add(subject, body.Schema, body.SchemaType, body.References)})
			return
		}
		ids := s.subjects[subject]
		if len(ids) == 0 {
			fail(w, http.StatusNotFound, 40401, "Subject '"+subject+"' not found.")
			return
		}
		for v, id := range ids {
			if same(id) {
				answer(w, s.body(id, map[string]any{"subject": subject, "version": v + 1, "id": id}))
				return
			}
		}
		fail(w, http.StatusNotFound, 40403, "Schema not found")
	default:
		fail(w, http.StatusNotFound, 404, "no such endpoint in the test registry: "+r.Method+" "+r.URL.Path)
	}
}

package httpc

import (
	"encoding/json"
	"errors"

	"github.com/invopop/jsonschema"
)

// URL is an option holding a URL that may carry credentials (a password,
// ?token=). It is a flag value (pflag.Value) whose String is the URL as
// given, but whose JSON form is redacted with Redact: the cli prints
// options as JSON (the config subcommand, the debug "starting" log), so
// credentials in the URL never appear there.
type URL string

// String returns the URL as given.
func (u URL) String() string { return string(u) }

// Set sets the URL; it makes URL a flag value.
func (u *URL) Set(s string) error {
	*u = URL(s)
	return nil
}

// Type names the flag's value type in --help.
func (u *URL) Type() string { return "url" }

// MarshalJSON writes the URL redacted.
func (u URL) MarshalJSON() ([]byte, error) { return json.Marshal(Redact(string(u))) }

// UnmarshalJSON reads a string.
func (u *URL) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be a URL string")
	}
	return u.Set(s)
}

// JSONSchema describes URL as a string.
func (URL) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Format: "uri"}
}

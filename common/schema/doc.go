// Package schema owns the JSON Schema of a connector's options: it is
// reflected (invopop/jsonschema) from the one Options struct that also gives
// the flags, and the merged options are validated against it
// (santhosh-tekuri/jsonschema) with errors that name the option.
package schema

package connectortest

import (
	"reflect"
	"testing"

	"github.com/culvert-dev/culvert/common/cli"
)

func TestExampleArgs(t *testing.T) {
	info := cli.Info{Name: "x-source", Examples: `
# Two lines, quotes of both kinds
x-source --topic t --map '.a = "b"' \
    --header "Authorization: Bearer $TOKEN" --x 'it''s' # a comment
# A variable before, a pipe after
CULVERT_X_SOURCE_PASSWORD=s3cret x-source --topic u --path - | jq .
other-tool --topic v
`}
	got := ExampleArgs(info)
	want := [][]string{
		{"--topic", "t", "--map", `.a = "b"`, "--header", "Authorization: Bearer $TOKEN", "--x", "its"},
		{"--topic", "u", "--path", "-"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

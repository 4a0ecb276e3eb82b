package schema

import "testing"

type Inner struct {
	Password string `json:"password" culvert:"secret"`
}

type withSecrets struct {
	Inner
	Token string `json:"token,omitempty" culvert:"transform,secret"`
	User  string `json:"user"`
}

func TestSecretFieldsAreWriteOnly(t *testing.T) {
	s := Reflect(&withSecrets{})
	for name, want := range map[string]bool{"password": true, "token": true, "user": false} {
		p, ok := s.Properties.Get(name)
		if !ok {
			t.Fatalf("no property %s", name)
		}
		if p.WriteOnly != want {
			t.Errorf("%s: writeOnly %v, want %v", name, p.WriteOnly, want)
		}
	}
}

package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// configDefinition is Kafka Connect's ConfigKeyInfo: one option.
type configDefinition struct {
	Name          string   `json:"name"`
	Type          string   `json:"type"`
	Required      bool     `json:"required"`
	DefaultValue  *string  `json:"default_value"`
	Importance    string   `json:"importance"`
	Documentation string   `json:"documentation"`
	Group         string   `json:"group"`
	Width         string   `json:"width"`
	DisplayName   string   `json:"display_name"`
	Dependents    []string `json:"dependents"`
	Order         int      `json:"order"`
}

// configValue is Kafka Connect's ConfigValueInfo: a value and its errors.
type configValue struct {
	Name              string   `json:"name"`
	Value             *string  `json:"value"`
	RecommendedValues []string `json:"recommended_values"`
	Errors            []string `json:"errors"`
	Visible           bool     `json:"visible"`
}

// ValidateResult is Kafka Connect's ConfigInfos, the answer of
// PUT /connector-plugins/{type}/config/validate.
type ValidateResult struct {
	Name       string   `json:"name"`
	ErrorCount int      `json:"error_count"`
	Groups     []string `json:"groups"`
	Configs    []struct {
		Definition configDefinition `json:"definition"`
		Value      configValue      `json:"value"`
	} `json:"configs"`
}

// kafkaTypes maps JSON Schema types to Kafka Connect's ConfigDef types.
var kafkaTypes = map[string]string{"string": "STRING", "integer": "LONG", "number": "DOUBLE", "boolean": "BOOLEAN", "array": "LIST"}

// definitions returns p's options as Kafka Connect's config definitions:
// connector.class and name (group Common), the connector's own (group
// named after its section), then the shared ones (group meta).
func definitions(p *Plugin) []configDefinition {
	str := func(s string) *string { return &s }
	out := []configDefinition{
		{Name: "connector.class", Type: "STRING", Required: true, Importance: "HIGH", Group: "Common", Width: "LONG",
			DisplayName: "Connector class", Documentation: "The connector binary to run, such as file-source.", Dependents: []string{}},
		{Name: "name", Type: "STRING", Required: true, Importance: "HIGH", Group: "Common", Width: "MEDIUM",
			DisplayName: "Connector name", Documentation: "The instance's name.", Dependents: []string{}},
	}
	names := make([]string, 0, len(p.Schema.Properties))
	for n := range p.Schema.Properties {
		names = append(names, n)
	}
	rank := func(n string) int {
		switch {
		case p.Required(n):
			return 0
		case p.Own(n):
			return 1
		}
		return 2
	}
	slices.SortFunc(names, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	for _, n := range names {
		pr := p.Schema.Properties[n]
		d := configDefinition{Name: n, Type: kafkaTypes[pr.Type], Required: p.Required(n), Importance: "MEDIUM",
			Documentation: pr.Description, Group: "meta", Width: "MEDIUM", DisplayName: n, Dependents: []string{}}
		if d.Type == "" {
			d.Type = "STRING"
		}
		if pr.WriteOnly {
			d.Type = "PASSWORD"
		}
		if d.Required {
			d.Importance = "HIGH"
		}
		if p.Own(n) {
			d.Group = p.Section()
		}
		if pr.Default != nil {
			if s, ok := pr.Default.(string); ok {
				d.DefaultValue = str(s)
			} else {
				b, _ := json.Marshal(pr.Default)
				d.DefaultValue = str(string(b))
			}
		}
		out = append(out, d)
	}
	for i := range out {
		out[i].Order = i + 1
	}
	return out
}

// Validate checks cfg as a config of p without running anything but p's
// validate, and answers per option as Kafka Connect does.
func (s *Supervisor) Validate(ctx context.Context, p *Plugin, cfg *Config) (*ValidateResult, error) {
	var errs configErrors
	name := "validate"
	if cfg.Flat != nil {
		if n := cfg.Flat["name"]; n != "" {
			name = n
		}
		if c := cfg.Flat["connector.class"]; c == "" {
			cfg.Flat["connector.class"] = p.Name
		} else if c != p.Name {
			errs = append(errs, OptionError{"connector.class", fmt.Sprintf("is %s, but this validates %s", c, p.Name)})
		}
	} else if m := cfg.meta(); m != nil {
		if n, ok := m["name"].(string); ok && n != "" {
			name = n
		}
		if t, ok := m["type"].(string); !ok || t == "" {
			m["type"] = p.Name
		} else if t != p.Name {
			errs = append(errs, OptionError{"connector.class", fmt.Sprintf("meta.type is %s, but this validates %s", t, p.Name)})
		}
	}
	if errs == nil {
		if checkName(name) != nil {
			name = "validate"
		}
		_, _, more, err := s.check(ctx, name, cfg)
		if err != nil {
			return nil, err
		}
		errs = more
	}
	// The values given, by option name.
	given := map[string]string{}
	if cfg.Flat != nil {
		shownCfg := cfg.Shown(p)
		for k, v := range shownCfg.Flat {
			given[optionName(k)] = v
			if k == "connector.class" || k == "name" {
				given[k] = v
			}
		}
	} else {
		for _, sec := range []string{"meta", p.Section()} {
			m, _ := cfg.Shown(p).Nested[sec].(map[string]any)
			for k, v := range m {
				if s, ok := v.(string); ok {
					given[k] = s
				} else {
					b, _ := json.Marshal(v)
					given[k] = string(b)
				}
			}
		}
	}
	res := &ValidateResult{Name: p.Name, Groups: []string{"Common", p.Section(), "meta"}}
	byName := map[string]int{}
	for i, d := range definitions(p) {
		v := configValue{Name: d.Name, RecommendedValues: []string{}, Errors: []string{}, Visible: true}
		if s, ok := given[d.Name]; ok {
			v.Value = &s
		}
		if pr := p.Schema.Properties[d.Name]; pr != nil {
			for _, e := range pr.Enum {
				v.RecommendedValues = append(v.RecommendedValues, fmt.Sprint(e))
			}
		}
		res.Configs = append(res.Configs, struct {
			Definition configDefinition `json:"definition"`
			Value      configValue      `json:"value"`
		}{d, v})
		byName[d.Name] = i
	}
	for _, e := range errs {
		opt := e.Option
		if opt != "connector.class" && opt != "name" {
			opt = optionName(strings.TrimPrefix(opt, "meta."))
		}
		i, ok := byName[opt]
		msg := e.Msg
		if !ok {
			i, msg = byName["connector.class"], e.Error()
		}
		res.Configs[i].Value.Errors = append(res.Configs[i].Value.Errors, msg)
		res.ErrorCount++
	}
	return res, nil
}

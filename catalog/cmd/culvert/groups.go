package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/culvert-dev/culvert/common/bus"
)

func (a *app) groupsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "List, describe, reset and delete consumer groups",
	}
	cmd.AddCommand(a.groupsList(), a.groupsDescribe(), a.groupsReset(), a.groupsDelete())
	return cmd
}

// groupTable prints groups, a row per group and topic.
func groupTable(a *app, groups []bus.GroupInfo) error {
	t := newTable(a.stdout, "TOPIC", "GROUP", "COMMITTED", "END", "LAG", "ACTIVE", "MEMBERS")
	for _, g := range groups {
		committed, end := "", ""
		if len(g.Partitions) == 1 {
			committed = strconv.FormatInt(g.Partitions[0].Committed, 10)
			end = strconv.FormatInt(g.Partitions[0].End, 10)
		} else {
			committed = strconv.Itoa(len(g.Partitions)) + " partitions"
		}
		t.row(g.Topic, g.Group, committed, end, strconv.FormatInt(g.Lag, 10), yesNo(g.Active), strings.Join(g.Members, ","))
	}
	return t.flush()
}

// groupErr names the group and topic in a bus error that does not
// already name the group.
func groupErr(topic, group string, err error) error {
	if strings.Contains(err.Error(), strconv.Quote(group)) {
		return err
	}
	return fmt.Errorf("group %q on topic %q: %w", group, topic, err)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// groupsOf returns the groups of topic ("": every topic's), checking that
// the topic exists.
func groupsOf(ctx context.Context, adm bus.Admin, topic string) ([]bus.GroupInfo, error) {
	if topic != "" {
		if _, err := adm.Topic(ctx, topic); err != nil {
			return nil, topicErr(topic, err)
		}
	}
	gs, err := adm.Groups(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing groups: %w", err)
	}
	if gs == nil {
		gs = []bus.GroupInfo{}
	}
	return gs, nil
}

func (a *app) groupsList() *cobra.Command {
	var out output
	var topic string
	cmd := &cobra.Command{
		Use:   "list [--topic TOPIC]",
		Short: "List the consumer groups (of one topic with --topic) with their committed offset, lag and members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withBus(ctx, func(_ bus.Bus, adm bus.Admin) error {
				gs, err := groupsOf(ctx, adm, topic)
				if err != nil {
					return err
				}
				if out.json() {
					return writeJSON(a.stdout, gs)
				}
				return groupTable(a, gs)
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only this topic's groups")
	out.flag(cmd)
	return cmd
}

// findGroup returns group's places on topic (every topic where it has
// offsets when topic is ""); ErrNotFound when it has none.
func findGroup(ctx context.Context, adm bus.Admin, topic, group string) ([]bus.GroupInfo, error) {
	gs, err := groupsOf(ctx, adm, topic)
	if err != nil {
		return nil, err
	}
	var mine []bus.GroupInfo
	for _, g := range gs {
		if g.Group == group {
			mine = append(mine, g)
		}
	}
	if len(mine) == 0 {
		if topic != "" {
			return nil, fmt.Errorf("group %q on topic %q: %w", group, topic, bus.ErrNotFound)
		}
		return nil, fmt.Errorf("group %q: %w", group, bus.ErrNotFound)
	}
	return mine, nil
}

func (a *app) groupsDescribe() *cobra.Command {
	var out output
	var topic string
	cmd := &cobra.Command{
		Use:   "describe GROUP [--topic TOPIC]",
		Short: "Describe a consumer group: per topic and partition its committed offset, the end and the lag; its members",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withBus(ctx, func(_ bus.Bus, adm bus.Admin) error {
				mine, err := findGroup(ctx, adm, topic, args[0])
				if err != nil {
					return err
				}
				if out.json() {
					return writeJSON(a.stdout, mine)
				}
				t := newTable(a.stdout, "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "ACTIVE", "MEMBERS")
				for _, g := range mine {
					for _, p := range g.Partitions {
						t.row(g.Topic, strconv.Itoa(int(p.Partition)), strconv.FormatInt(p.Committed, 10),
							strconv.FormatInt(p.End, 10), strconv.FormatInt(p.Lag, 10), yesNo(g.Active), strings.Join(g.Members, ","))
					}
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "only the group's place on this topic")
	out.flag(cmd)
	return cmd
}

// resetFlags are the --to-* options of groups reset: exactly one is given.
type resetFlags struct {
	earliest, latest bool
	offset           int64
	at               string
}

func (r *resetFlags) bind(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&r.earliest, "to-earliest", false, "to the first record kept")
	cmd.Flags().BoolVar(&r.latest, "to-latest", false, "to the end: only records published later are read")
	cmd.Flags().Int64Var(&r.offset, "to-offset", 0, "to this offset (on every partition); refused past the end")
	cmd.Flags().StringVar(&r.at, "to-time", "", "to the first record published at or after this time: RFC 3339, or a duration ago (10m, 2h, 7d)")
}

func (r *resetFlags) options(cmd *cobra.Command, now time.Time) (bus.ResetOptions, error) {
	var given []string
	for _, f := range []string{"to-earliest", "to-latest", "to-offset", "to-time"} {
		if cmd.Flags().Changed(f) {
			given = append(given, "--"+f)
		}
	}
	if len(given) != 1 {
		return bus.ResetOptions{}, usagef("--to-earliest, --to-latest, --to-offset or --to-time: give exactly one (given: %s)", strings.Join(append(given, "none")[:max(1, len(given))], ", "))
	}
	switch {
	case r.earliest:
		return bus.ResetOptions{To: bus.ResetEarliest}, nil
	case r.latest:
		return bus.ResetOptions{To: bus.ResetLatest}, nil
	case cmd.Flags().Changed("to-offset"):
		if r.offset < 0 {
			return bus.ResetOptions{}, usagef("--to-offset: must be 0 or more, not %d", r.offset)
		}
		return bus.ResetOptions{To: bus.ResetOffset, Offset: r.offset}, nil
	case cmd.Flags().Changed("to-time"):
		t, ok := parseTime(r.at, now)
		if !ok {
			return bus.ResetOptions{}, usagef("--to-time: must be a time (RFC 3339, such as 2026-12-07T05:00:00Z) or a duration ago (such as 10m), not %q", r.at)
		}
		return bus.ResetOptions{To: bus.ResetTime, Time: t}, nil
	}
	return bus.ResetOptions{}, usagef("--to-earliest or --to-latest: false is not a place to reset to")
}

func (a *app) groupsReset() *cobra.Command {
	var out output
	var topic string
	var to resetFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "reset GROUP --topic TOPIC --to-earliest|--to-latest|--to-offset N|--to-time T",
		Short: "Move a group's committed offsets on a topic (refused while the group has an active member, unless --force)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if topic == "" {
				return usagef("--topic: required (a group's offsets are per topic)")
			}
			opts, err := to.options(cmd, time.Now())
			if err != nil {
				return err
			}
			opts.Force = force
			ctx, group := cmd.Context(), args[0]
			return a.withBus(ctx, func(_ bus.Bus, adm bus.Admin) error {
				if _, err := adm.Topic(ctx, topic); err != nil {
					return topicErr(topic, err)
				}
				if err := adm.ResetGroup(ctx, topic, group, opts); err != nil {
					switch {
					case errors.Is(err, bus.ErrActive):
						return fmt.Errorf("%w; --force resets it anyway (the member may commit over the reset)", groupErr(topic, group, err))
					case errors.Is(err, bus.ErrOutOfRange):
						return fmt.Errorf("--to-offset: %w", err)
					}
					return groupErr(topic, group, err)
				}
				mine, err := findGroup(ctx, adm, topic, group)
				if err != nil {
					return err
				}
				if out.json() {
					return writeJSON(a.stdout, mine)
				}
				return groupTable(a, mine)
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "the topic whose offsets move (required)")
	to.bind(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "reset even while the group has an active member")
	out.flag(cmd)
	return cmd
}

func (a *app) groupsDelete() *cobra.Command {
	var topic string
	var force bool
	var out output
	cmd := &cobra.Command{
		Use:   "delete GROUP --topic TOPIC",
		Short: "Forget a group's offsets on a topic (refused while the group has an active member, unless --force)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if topic == "" {
				return usagef("--topic: required (a group's offsets are per topic)")
			}
			ctx, group := cmd.Context(), args[0]
			return a.withBus(ctx, func(_ bus.Bus, adm bus.Admin) error {
				if _, err := adm.Topic(ctx, topic); err != nil {
					return topicErr(topic, err)
				}
				if err := adm.DeleteGroup(ctx, topic, group, force); err != nil {
					if errors.Is(err, bus.ErrActive) {
						return fmt.Errorf("%w; --force deletes it anyway", groupErr(topic, group, err))
					}
					return groupErr(topic, group, err)
				}
				if out.json() {
					return writeJSON(a.stdout, deletion{Topic: topic, Group: group, Deleted: true})
				}
				_, err := fmt.Fprintf(a.stdout, "deleted group %s on topic %s\n", group, topic)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "the topic whose offsets are forgotten (required)")
	cmd.Flags().BoolVar(&force, "force", false, "delete even while the group has an active member")
	out.flag(cmd)
	return cmd
}

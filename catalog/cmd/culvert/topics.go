package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/culvert-dev/culvert/common/bus"
)

func (a *app) topicsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "List, describe, create, alter and delete topics",
	}
	cmd.AddCommand(a.topicsList(), a.topicsDescribe(), a.topicsCreate(), a.topicsAlter(), a.topicsDelete())
	return cmd
}

// topicErr names the topic in a bus error that does not already:
// `topic "orders": not found`.
func topicErr(topic string, err error) error {
	if err == nil || strings.Contains(err.Error(), strconv.Quote(topic)) {
		return err
	}
	return fmt.Errorf("topic %q: %w", topic, err)
}

func (a *app) topicsList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the topics with their records, bytes, first and last offsets, retention and groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			return a.withBus(cmd.Context(), func(_ bus.Bus, adm bus.Admin) error {
				topics, err := adm.Topics(cmd.Context())
				if err != nil {
					return fmt.Errorf("listing topics: %w", err)
				}
				if out.json() {
					if topics == nil {
						topics = []bus.TopicInfo{}
					}
					return writeJSON(a.stdout, topics)
				}
				t := newTable(a.stdout, "TOPIC", "PARTITIONS", "RECORDS", "BYTES", "FIRST", "LAST", "RETENTION", "GROUPS")
				for _, ti := range topics {
					first, last := "", ""
					if len(ti.Partitions) == 1 {
						p := ti.Partitions[0]
						first, last = strconv.FormatInt(p.First, 10), lastOffset(p)
					}
					t.row(ti.Name, strconv.Itoa(len(ti.Partitions)), strconv.FormatInt(ti.Records, 10), size(ti.Bytes),
						first, last, retention(ti.Retention), strings.Join(ti.Groups, ","))
				}
				return t.flush()
			})
		},
	}
	out.flag(cmd)
	return cmd
}

// topicDescription is what topics describe -o json prints: the topic and
// its groups' places in it.
type topicDescription struct {
	bus.TopicInfo
	Consumers []bus.GroupInfo `json:"consumers"`
}

func (a *app) topicsDescribe() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "describe TOPIC",
		Short: "Describe a topic: its partitions (first and last offsets, records, bytes), retention and groups with their lag",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx, topic := cmd.Context(), args[0]
			return a.withBus(ctx, func(_ bus.Bus, adm bus.Admin) error {
				ti, err := adm.Topic(ctx, topic)
				if err != nil {
					return topicErr(topic, err)
				}
				groups, err := adm.Groups(ctx, topic)
				if err != nil {
					return fmt.Errorf("listing the groups of %q: %w", topic, err)
				}
				if out.json() {
					if groups == nil {
						groups = []bus.GroupInfo{}
					}
					if ti.Groups == nil {
						ti.Groups = []string{}
					}
					return writeJSON(a.stdout, topicDescription{ti, groups})
				}
				fmt.Fprintf(a.stdout, "topic:      %s\nrecords:    %d\nbytes:      %s\nretention:  %s (age / size)\n\n",
					ti.Name, ti.Records, size(ti.Bytes), retention(ti.Retention))
				t := newTable(a.stdout, "PARTITION", "FIRST", "LAST", "RECORDS", "BYTES")
				for _, p := range ti.Partitions {
					t.row(strconv.Itoa(int(p.Partition)), strconv.FormatInt(p.First, 10), lastOffset(p),
						strconv.FormatInt(p.Records, 10), size(p.Bytes))
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout)
				if len(groups) == 0 {
					_, err := fmt.Fprintln(a.stdout, "no consumer groups")
					return err
				}
				return groupTable(a, groups)
			})
		},
	}
	out.flag(cmd)
	return cmd
}

// retentionFlags are the options of topics create and alter.
type retentionFlags struct{ age, bytes string }

func (r *retentionFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.age, "retention-age", "", "records older than this may be deleted: a duration (12h, 7d) or unlimited")
	cmd.Flags().StringVar(&r.bytes, "retention-bytes", "", "the oldest records are deleted past this size: bytes (units KiB, MiB, GiB, TiB) or unlimited")
}

func (r *retentionFlags) config() (bus.TopicConfig, error) {
	var c bus.TopicConfig
	var err error
	if r.age != "" {
		if c.RetentionAge, err = parseAge("retention-age", r.age); err != nil {
			return c, err
		}
	}
	if r.bytes != "" {
		if c.RetentionBytes, err = parseBytes("retention-bytes", r.bytes); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (a *app) topicsCreate() *cobra.Command {
	var ret retentionFlags
	var out output
	cmd := &cobra.Command{
		Use:   "create TOPIC",
		Short: "Create a topic (retention: the bus's default unless given)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cfg, err := ret.config()
			if err != nil {
				return err
			}
			if err := checkTopicName(args[0]); err != nil {
				return err
			}
			ctx := cmd.Context()
			return a.withBus(ctx, func(_ bus.Bus, adm bus.Admin) error {
				if err := adm.CreateTopic(ctx, args[0], cfg); err != nil {
					return topicErr(args[0], err)
				}
				if out.json() {
					return a.topicJSON(ctx, adm, args[0])
				}
				_, err := fmt.Fprintf(a.stdout, "created topic %s\n", args[0])
				return err
			})
		},
	}
	ret.bind(cmd)
	out.flag(cmd)
	return cmd
}

// topicJSON prints what adm says of topic, for -o json.
func (a *app) topicJSON(ctx context.Context, adm bus.Admin, topic string) error {
	ti, err := adm.Topic(ctx, topic)
	if err != nil {
		return topicErr(topic, err)
	}
	if ti.Groups == nil {
		ti.Groups = []string{}
	}
	return writeJSON(a.stdout, ti)
}

// deletion is what a delete prints with -o json.
type deletion struct {
	Topic   string `json:"topic"`
	Group   string `json:"group,omitempty"`
	Deleted bool   `json:"deleted"`
}

// checkTopicName refuses a name no backend can hold.
func checkTopicName(name string) error {
	if name == "" || strings.TrimSpace(name) != name || strings.ContainsAny(name, " \t\r\n") {
		return usagef("TOPIC: %q is not a topic name (no spaces)", name)
	}
	return nil
}

func (a *app) topicsAlter() *cobra.Command {
	var ret retentionFlags
	var out output
	cmd := &cobra.Command{
		Use:   "alter TOPIC --retention-age D | --retention-bytes N",
		Short: "Change a topic's retention (what is not given stays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cfg, err := ret.config()
			if err != nil {
				return err
			}
			if cfg == (bus.TopicConfig{}) {
				return usagef("--retention-age or --retention-bytes: give what to change")
			}
			ctx := cmd.Context()
			return a.withBus(ctx, func(_ bus.Bus, adm bus.Admin) error {
				if err := adm.AlterTopic(ctx, args[0], cfg); err != nil {
					return topicErr(args[0], err)
				}
				if out.json() {
					return a.topicJSON(ctx, adm, args[0])
				}
				ti, err := adm.Topic(ctx, args[0])
				if err != nil {
					return topicErr(args[0], err)
				}
				_, err = fmt.Fprintf(a.stdout, "topic %s: retention %s (age / size)\n", args[0], retention(ti.Retention))
				return err
			})
		},
	}
	ret.bind(cmd)
	out.flag(cmd)
	return cmd
}

func (a *app) topicsDelete() *cobra.Command {
	var force bool
	var out output
	cmd := &cobra.Command{
		Use:   "delete TOPIC",
		Short: "Delete a topic, its records and its groups' offsets (refused while a group has an active member, unless --force)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx, topic := cmd.Context(), args[0]
			return a.withBus(ctx, func(_ bus.Bus, adm bus.Admin) error {
				if err := adm.DeleteTopic(ctx, topic, force); err != nil {
					if errors.Is(err, bus.ErrActive) {
						return fmt.Errorf("%w; --force deletes it anyway", topicErr(topic, err))
					}
					return topicErr(topic, err)
				}
				if out.json() {
					return writeJSON(a.stdout, deletion{Topic: topic, Deleted: true})
				}
				_, err := fmt.Fprintf(a.stdout, "deleted topic %s\n", topic)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete even while a group has an active member")
	out.flag(cmd)
	return cmd
}

package bus

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Admin is what the culvert command needs to operate a bus: its topics and
// its consumer groups. Every backend's Bus implements it (AdminOf finds
// it), and bustest.RunAdmin checks each the same way. An operation a
// backend cannot do returns an error wrapping ErrUnsupported that says
// why, never a wrong answer.
type Admin interface {
	// Topics returns every topic of the bus, sorted by name, with what
	// Topic returns for each.
	Topics(ctx context.Context) ([]TopicInfo, error)
	// Topic describes one topic; ErrNotFound when it does not exist.
	Topic(ctx context.Context, name string) (TopicInfo, error)
	// CreateTopic creates a topic with cfg (zero fields: the backend's
	// defaults); ErrExists when it exists.
	CreateTopic(ctx context.Context, name string, cfg TopicConfig) error
	// AlterTopic changes the fields of cfg that are set (not zero);
	// ErrNotFound when the topic does not exist.
	AlterTopic(ctx context.Context, name string, cfg TopicConfig) error
	// DeleteTopic deletes a topic, its records and its groups' offsets;
	// ErrNotFound when it does not exist, ErrActive when a group has an
	// active member and force is false.
	DeleteTopic(ctx context.Context, name string, force bool) error
	// Groups returns the consumer groups of topic (every topic's when
	// topic is ""), sorted by topic then group.
	Groups(ctx context.Context, topic string) ([]GroupInfo, error)
	// ResetGroup moves the group's committed offsets on topic, creating
	// the group when it has none. ErrNotFound when the topic does not
	// exist; ErrActive when the group has an active member and
	// opts.Force is false; ErrOutOfRange for an offset past the end.
	ResetGroup(ctx context.Context, topic, group string, opts ResetOptions) error
	// DeleteGroup forgets the group's offsets on topic; ErrNotFound when
	// it has none, ErrActive when it has an active member and force is
	// false.
	DeleteGroup(ctx context.Context, topic, group string, force bool) error
}

// TopicConfig is a topic's retention. A zero field is not set: the
// backend's default on create, unchanged on alter; a negative one is
// "unlimited".
type TopicConfig struct {
	// RetentionAge: records older than this may be deleted.
	RetentionAge time.Duration `json:"retention_age,omitempty"`
	// RetentionBytes: the oldest records are deleted while the topic holds
	// more than this many bytes.
	RetentionBytes int64 `json:"retention_bytes,omitempty"`
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name       string          `json:"name"`
	Partitions []PartitionInfo `json:"partitions"`
	// Records and Bytes are the sums over the partitions; Bytes is -1 when
	// the backend cannot tell.
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Retention is what the topic has (negative: unlimited; zero: the
	// backend cannot tell).
	Retention TopicConfig `json:"retention"`
	// Groups are the consumer groups with offsets on the topic, sorted.
	Groups []string `json:"groups"`
}

// PartitionInfo describes one partition of a topic. Offsets are those of
// Message.Offset: First is the oldest record kept, End is one past the
// last (First == End when the partition is empty).
type PartitionInfo struct {
	Partition int32 `json:"partition"`
	First     int64 `json:"first"`
	End       int64 `json:"end"`
	Records   int64 `json:"records"`
	Bytes     int64 `json:"bytes"`
}

// GroupInfo describes a consumer group on a topic.
type GroupInfo struct {
	Topic      string           `json:"topic"`
	Group      string           `json:"group"`
	Partitions []GroupPartition `json:"partitions"`
	// Lag is the sum over the partitions.
	Lag int64 `json:"lag"`
	// Active is true while a member of the group is connected; Members
	// names them where the backend can tell (a client id, a host and pid).
	Active  bool     `json:"active"`
	Members []string `json:"members,omitempty"`
}

// GroupPartition is a group's place in one partition: Committed is the
// next offset it will read (the partition's First when it has read
// nothing that is still kept), Lag the records between it and End.
type GroupPartition struct {
	Partition int32 `json:"partition"`
	Committed int64 `json:"committed"`
	End       int64 `json:"end"`
	Lag       int64 `json:"lag"`
}

// ResetTo says where ResetGroup moves a group.
type ResetTo int

const (
	// ResetEarliest: the first record kept.
	ResetEarliest ResetTo = iota
	// ResetLatest: the end; only records published later are read.
	ResetLatest
	// ResetOffset: ResetOptions.Offset (on every partition).
	ResetOffset
	// ResetTime: the first record published at or after ResetOptions.Time
	// (the end when there is none).
	ResetTime
)

// ResetOptions say where ResetGroup moves a group.
type ResetOptions struct {
	To     ResetTo
	Offset int64
	Time   time.Time
	// Force resets a group that has an active member; that member may
	// commit over the reset.
	Force bool
}

var (
	// ErrNotFound: the topic or group does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the topic exists.
	ErrExists = errors.New("already exists")
	// ErrActive: a group has an active member (use force).
	ErrActive = errors.New("has an active member")
	// ErrOutOfRange: an offset past the end of the topic.
	ErrOutOfRange = errors.New("offset out of range")
	// ErrUnsupported: the backend cannot do this.
	ErrUnsupported = errors.New("not supported by this bus")
)

// AdminOf returns b's admin interface, or an error wrapping ErrUnsupported.
func AdminOf(b Bus) (Admin, error) {
	if a, ok := b.(Admin); ok {
		return a, nil
	}
	return nil, fmt.Errorf("%T: topic and group operations are %w", b, ErrUnsupported)
}

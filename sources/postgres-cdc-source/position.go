package main

import (
	"encoding/json"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// position is what the connector saves on the bus with each batch (the
// bus's position store, under the slot's name), in the same write as the
// records where the bus allows: it tells a restarted connector what is on
// the bus already, so that it neither repeats what the slot sends again
// (the slot's confirmed position lags behind the bus by up to
// --status-interval) nor skips an interrupted snapshot.
type position struct {
	// Snapshot is "started" while an initial snapshot is being published
	// (a restart takes it again from the start, with a new slot), "" after.
	Snapshot string `json:"snapshot,omitempty"`
	// LSN is the end of the last transaction whose records are all on the
	// bus (or the slot's consistent point after a snapshot).
	LSN lsn `json:"lsn,omitempty"`
	// Tx and TxRecords: the commit LSN of a transaction published in
	// several writes (--max-tx-records) and how many of its records are
	// on the bus.
	Tx        lsn `json:"tx,omitempty"`
	TxRecords int `json:"tx_records,omitempty"`
}

func (p position) encode() []byte {
	b, _ := json.Marshal(p)
	return b
}

func decodePosition(b []byte) (position, error) {
	var p position
	if len(b) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("the position saved on the bus is not one of postgres-cdc-source (%q): %w", b, err)
	}
	return p, nil
}

// lsn is an LSN written as PostgreSQL writes it, 0/16B3748.
type lsn pglogrepl.LSN

func (l lsn) MarshalJSON() ([]byte, error) { return json.Marshal(pglogrepl.LSN(l).String()) }

func (l *lsn) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := pglogrepl.ParseLSN(s)
	*l = lsn(v)
	return err
}

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/culvert-dev/culvert/common/client/sqldb"
)

// insertMessage encodes a pgoutput Insert of relation id with text columns.
func insertMessage(id uint32, cols ...string) []byte {
	b := []byte{'I'}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, 'N')
	b = binary.BigEndian.AppendUint16(b, uint16(len(cols)))
	for _, c := range cols {
		b = append(b, 't')
		b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

// ordersRelation is the table of bench postgres-cdc.
func ordersRelation() *relation {
	return newRelation(16384, "public", "orders", 'd', []string{"id", "customer_id", "amount", "product", "created_at"},
		[]uint32{pgtype.Int8OID, pgtype.TextOID, pgtype.NumericOID, pgtype.TextOID, pgtype.TimestamptzOID}, []bool{true, false, false, false, false}, []string{"id"})
}

func BenchmarkInsertRecord(b *testing.B) {
	s := &source{dec: newDecoder(), rels: map[uint32]*relation{16384: ordersRelation()}, opts: Options{MaxTxRecords: 1 << 30}}
	s.tx = &txn{xid: 750, ts: time.Now()}
	msg := insertMessage(16384, "123456", "c-4242", "1234.56", "laptop", "2026-12-07 10:00:00.123+00")
	x := pglogrepl.XLogData{WALStart: 0x16B3748, WALData: msg}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.handle(context.Background(), x); err != nil {
			b.Fatal(err)
		}
		if len(s.tx.recs) >= 1000 {
			s.tx.recs = s.tx.recs[:0]
		}
	}
}

// TestShortcutsAreSqldbs: appendValue's shortcuts write exactly what
// sqldb.PgValue and sqldb.AppendJSON write, so that sql-source and this
// connector give a column the same JSON.
func TestShortcutsAreSqldbs(t *testing.T) {
	cases := map[uint32][]string{
		pgtype.Int2OID:    {"0", "-32768", "32767"},
		pgtype.Int4OID:    {"42", "-2147483648"},
		pgtype.Int8OID:    {"9223372036854775807", "-1"},
		pgtype.NumericOID: {"0", "-1.50", "12345678901234567890.000000000001", "NaN", "Infinity", "-Infinity", "1e5"},
		pgtype.BoolOID:    {"t", "f"},
		pgtype.TextOID:    {"", "plain", `a "quoted" \ back`, "tab\tnew\nline\r\x01", "é ü 漢字 😀", "\xff\xfe bad utf-8", "\u2028\u2029", "<html>&"},
		pgtype.VarcharOID: {"abc"},
		pgtype.BPCharOID:  {"ab   "},
		pgtype.NameOID:    {"pg_class"},
		pgtype.JSONOID:    {`{"z":1,  "a":[1, 2.50]}`, `null`, `"s"`, `{bad json`},
		pgtype.JSONBOID:   {`{"a": null, "b": [1, 2.50]}`, `12345678901234567890`},
		pgtype.TimestamptzOID: {"2026-12-07 10:00:00+00", "2026-12-07 10:00:00.1+00", "2026-12-07 10:00:00.120+00", "2026-12-07 10:00:00.000001+00",
			"2026-12-07 10:00:00.123456+00", "0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00", "2026-12-07 10:00:00+05", "2026-12-07 10:00:00+05:30",
			"0044-03-15 12:00:00+00 BC", "infinity", "-infinity", "12026-12-07 10:00:00+00"},
		pgtype.TimestampOID: {"2026-12-07 10:00:00", "2026-12-07 10:00:00.5", "2026-12-07 10:00:00.500000", "0044-03-15 12:00:00 BC", "infinity"},
		pgtype.DateOID:      {"2026-12-07", "0001-01-01", "0044-03-15 BC", "infinity", "-infinity"},
		pgtype.UUIDOID:      {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "00000000-0000-0000-0000-000000000000"},
	}
	d := newDecoder()
	for oid, texts := range cases {
		for _, text := range texts {
			v, err := sqldb.PgValue(d.types, oid, pgtype.TextFormatCode, []byte(text))
			if err != nil {
				v = text
			}
			want := string(sqldb.AppendJSON(nil, v))
			if got := string(d.appendValue(nil, oid, []byte(text))); got != want {
				t.Errorf("type %d, %q: %s, sqldb writes %s", oid, text, got, want)
			}
		}
	}
}

func TestAppendLSN(t *testing.T) {
	for _, l := range []pglogrepl.LSN{0, 0x16B3748, 0x1_00000000, 0xFFFFFFFF_FFFFFFFF, 0xA_0000000B} {
		if got := string(appendLSN(nil, l)); got != l.String() {
			t.Errorf("%s written %s", l, got)
		}
	}
}

// chunks is a reader that returns its chunks one a Read, then err.
type chunks struct {
	parts [][]byte
	err   error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, c.err
	}
	n := copy(p, c.parts[0])
	if n < len(c.parts[0]) {
		c.parts[0] = c.parts[0][n:]
	} else {
		c.parts = c.parts[1:]
	}
	return n, nil
}

// TestBatchingReader: every byte comes through in order, whatever the
// sizes of the reads on either side, and the error after them.
func TestBatchingReader(t *testing.T) {
	var want []byte
	src := &chunks{err: io.ErrUnexpectedEOF}
	for i := range 50 {
		part := make([]byte, 1+i*997%(batchingReadSize/3))
		for j := range part {
			part[j] = byte(i + j)
		}
		src.parts = append(src.parts, part)
		want = append(want, part...)
	}
	r := newBatchingReader(src)
	var got []byte
	buf := make([]byte, 5000)
	var err error
	for err == nil {
		var n int
		n, err = r.Read(buf[:1+len(got)%len(buf)])
		got = append(got, buf[:n]...)
	}
	if err != io.ErrUnexpectedEOF || !bytes.Equal(got, want) {
		t.Fatalf("read %d of %d bytes (equal: %v), error %v", len(got), len(want), bytes.Equal(got, want), err)
	}
}

package embedded

import "context"

// vacuum gives the pages that deletes freed back to the file system, a
// bounded step at a time (PRAGMA incremental_vacuum; a store made before
// auto-vacuum reuses them instead).
func (b *Bus) vacuum(ctx context.Context) {
	b.meta.ExecContext(ctx, `PRAGMA incremental_vacuum(2048)`)
}

/*-------------------------------------------------------------------------
 *
 * watch_ring.c
 *	  Decide, without locks, whether a key or a prefix changed after a given
 *	  change index: the reading side of src/pg/watch.c's ring.
 *
 * kvwr_scan(target, base) reads the index (cur), then walks the ring from
 * its newest slot back until it meets a slot of index <= base: every
 * transaction published up to cur has its slots below 'head' (they are
 * written before the index moves), newest last, so that walk sees them
 * all unless they were overwritten, which 'forgotten', read after the
 * walk, then reveals.  Slots newer than cur belong to a later index and
 * are left for the next scan.  Each slot is copied between two reads of
 * its seq (a seqlock, as cache_fastpath.c does per partition); one that
 * stays torn counts as a change.  So the answer errs one way only: "it
 * changed" when it did not is a wasted look at the key; "no change" is
 * only said when the ring proves it.
 *
 * A base above cur comes from another server or an earlier run (indexes
 * grow with WAL positions, see watch.c): also "changed", so the client
 * lists again.
 *
 * Runs on civetweb threads: plain C and pg_atomic_* only.  It includes
 * c.h for the atomics and refuses to compile with postgres.h.
 *
 * IDENTIFICATION
 *	  src/civet/watch_ring.c
 *
 *-------------------------------------------------------------------------
 */
#include "c.h"

#include <string.h>

#include "cache_core.h"
#include "watch_ring.h"
#include "watch_shared.h"

#ifdef POSTGRES_H
#error "watch_ring.c runs on civetweb threads: no postgres.h"
#endif

#define SLOT_TRIES 3

static KvWatchShared *shared = NULL;

/* Called by the main thread before civetweb starts. */
void
kvwr_attach(void *watch_shared)
{
	shared = (KvWatchShared *) watch_shared;
}

bool
kvwr_attached(void)
{
	return shared != NULL;
}

/* The current change index (0: none, or no shared memory). */
uint64_t
kvwr_index(void)
{
	if (shared == NULL)
		return 0;
	return pg_atomic_read_u64(&shared->index);
}

void
kvwr_target(KvWatchTarget *t, const char *bytes, size_t len, bool prefix)
{
	t->bytes = bytes;
	t->len = len;
	t->prefix = prefix;
	t->hash = prefix ? 0 : kvc_hash(bytes, len);
}

/*
 * Could the change in slot 's' (a consistent copy) touch the target?
 * A slot's bytes stand for every key that starts with them, unless it is
 * a key stored whole.
 */
static bool
slot_matches(const KvWatchSlot *s, const KvWatchTarget *t)
{
	size_t		n;

	if (s->kind == KVWATCH_SLOT_KEY && !t->prefix)
		return s->hash == t->hash && s->key_len == t->len;
	if (s->kind == KVWATCH_SLOT_KEY && s->stored == s->key_len)
		/* a whole key under a prefix */
		return t->len <= s->stored && memcmp(s->bytes, t->bytes, t->len) == 0;
	if (!t->prefix)
		/* a key under a prefix (or under a key's first bytes) */
		return s->stored <= t->len && memcmp(s->bytes, t->bytes, s->stored) == 0;
	/* two prefixes: some key is under both when one extends the other */
	n = Min((size_t) s->stored, t->len);
	return memcmp(s->bytes, t->bytes, n) == 0;
}

/*
 * Copy ring slot 'pos' consistently.  False if it stayed torn (a writer
 * is filling it right now).
 */
static bool
read_slot(uint64 pos, KvWatchSlot *out)
{
	KvWatchSlot *s = &shared->ring[pos % KVWATCH_RING];
	int			i;

	for (i = 0; i < SLOT_TRIES; i++)
	{
		uint64		seq = pg_atomic_read_u64(&s->seq);

		if (seq & 1)
			continue;
		pg_read_barrier();
		out->index = s->index;
		out->hash = s->hash;
		out->key_len = s->key_len;
		out->stored = Min(s->stored, KVWATCH_KEY_BYTES);
		out->kind = s->kind;
		memcpy(out->bytes, s->bytes, out->stored);
		pg_read_barrier();
		if (pg_atomic_read_u64(&s->seq) == seq)
			return true;
	}
	return false;
}

/*
 * Did the target change after change index 'base'?  *seen is set to the
 * index the answer holds up to: scan again from there after a wakeup.
 */
KvWatchScan
kvwr_scan(const KvWatchTarget *t, uint64_t base, uint64_t *seen)
{
	uint64		cur;
	uint64		head;
	uint64		pos;
	uint64		stop;
	KvWatchSlot s;

	*seen = base;
	if (shared == NULL)
		return KV_WATCH_CHANGED;
	cur = pg_atomic_read_u64(&shared->index);
	if (base > cur)
		return KV_WATCH_CHANGED;
	if (base == cur)
		return KV_WATCH_NONE;
	pg_read_barrier();
	head = pg_atomic_read_u64(&shared->head);
	*seen = cur;
	stop = head > KVWATCH_RING ? head - KVWATCH_RING : 0;
	for (pos = head; pos > stop; pos--)
	{
		if (!read_slot(pos - 1, &s))
			return KV_WATCH_CHANGED;
		if (s.index <= base)
			break;
		if (s.index <= cur && slot_matches(&s, t))
			return KV_WATCH_CHANGED;
	}
	/* were slots after 'base' overwritten while, or before, we looked? */
	pg_read_barrier();
	if (pg_atomic_read_u64(&shared->forgotten) > base)
		return KV_WATCH_CHANGED;
	return KV_WATCH_NONE;
}

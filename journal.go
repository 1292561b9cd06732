//go:build !sterad_broken_journal

package sterad

// journalBeforeSend is the first rule of the trade: a request is journaled
// before it is sent. The crash test's negative control builds with the tag
// sterad_broken_journal, which turns it off, and must see transactions lost.
const journalBeforeSend = true

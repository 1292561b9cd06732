//go:build sterad_broken_journal

package sterad

// journalBeforeSend is false in the deliberately broken build used as the
// crash test's negative control: keyed requests are sent first and
// journaled afterwards, so a crash in between loses what the host charged.
const journalBeforeSend = false

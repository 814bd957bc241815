package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Group member states.
const (
	MemberActive  = "member"
	MemberApplied = "applied"
)

// Group is a g: conversation with its owner, members and applicants.
type Group struct {
	Feeds      string
	Name       string
	Owner      string
	Created    int64
	Members    []string // sorted
	Applicants []string // sorted
}

// IsMember reports whether account is a member of g.
func (g Group) IsMember(account string) bool {
	for _, m := range g.Members {
		if m == account {
			return true
		}
	}
	return false
}

// GetGroup reads a group with its members, or ErrNotFound.
func GetGroup(ctx context.Context, q Querier, feeds string) (Group, error) {
	g := Group{Feeds: feeds}
	err := q.QueryRowContext(ctx, `SELECT name, owner, created FROM groups WHERE feeds = ?`, feeds).Scan(&g.Name, &g.Owner, &g.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return g, ErrNotFound
	}
	if err != nil {
		return g, fmt.Errorf("store: group %s: %w", feeds, err)
	}
	rows, err := q.QueryContext(ctx, `SELECT account, state FROM group_members WHERE feeds = ? ORDER BY account`, feeds)
	if err != nil {
		return g, fmt.Errorf("store: group %s: %w", feeds, err)
	}
	defer rows.Close()
	for rows.Next() {
		var account, state string
		if err := rows.Scan(&account, &state); err != nil {
			return g, fmt.Errorf("store: group %s: %w", feeds, err)
		}
		if state == MemberActive {
			g.Members = append(g.Members, account)
		} else {
			g.Applicants = append(g.Applicants, account)
		}
	}
	return g, rows.Err()
}

// CreateGroup inserts a new group row.
func CreateGroup(ctx context.Context, tx Tx, g Group) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO groups (feeds, name, owner, created) VALUES (?, ?, ?, ?)`,
		g.Feeds, g.Name, g.Owner, g.Created); err != nil {
		return fmt.Errorf("store: create group %s: %w", g.Feeds, err)
	}
	return nil
}

// SetMember sets account's state in a group (member or applied).
func SetMember(ctx context.Context, tx Tx, feeds, account, state string, since int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO group_members (feeds, account, state, since) VALUES (?, ?, ?, ?)
		ON CONFLICT (feeds, account) DO UPDATE SET state = excluded.state, since = excluded.since`,
		feeds, account, state, since); err != nil {
		return fmt.Errorf("store: group member %s %s: %w", feeds, account, err)
	}
	return nil
}

// DeleteMember removes account from a group.
func DeleteMember(ctx context.Context, tx Tx, feeds, account string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE feeds = ? AND account = ?`, feeds, account); err != nil {
		return fmt.Errorf("store: remove member %s %s: %w", feeds, account, err)
	}
	return nil
}

// DeleteGroup removes a group and its memberships; its messages stay.
func DeleteGroup(ctx context.Context, tx Tx, feeds string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE feeds = ?`, feeds); err != nil {
		return fmt.Errorf("store: dissolve %s: %w", feeds, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM groups WHERE feeds = ?`, feeds); err != nil {
		return fmt.Errorf("store: dissolve %s: %w", feeds, err)
	}
	return nil
}

// Group reads a group, or ErrNotFound.
func (db *DB) Group(ctx context.Context, feeds string) (Group, error) {
	return GetGroup(ctx, db.read, feeds)
}

// GroupsOf returns the feeds of the groups account is a member of.
func (db *DB) GroupsOf(ctx context.Context, account string) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT feeds FROM group_members WHERE account = ? AND state = ? ORDER BY feeds`,
		account, MemberActive)
	if err != nil {
		return nil, fmt.Errorf("store: groups of %s: %w", account, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			return nil, fmt.Errorf("store: groups of %s: %w", account, err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

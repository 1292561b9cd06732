package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

// Client calls a sterad daemon's HTTP API.
type Client struct {
	BaseURL string // "http://127.0.0.1:7583"
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client for the API at base (with or without
// "http://").
func NewClient(base, token string) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{BaseURL: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: 10 * time.Minute}}
}

// Error is an error answer of the API.
type Error struct {
	Status      int
	Code        string
	Message     string
	Transaction *Transaction // set when the request created a transaction
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (when non-nil). It returns the HTTP status.
func (c *Client) Do(ctx context.Context, method, path string, header http.Header, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("call sterad at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return resp.StatusCode, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message, Transaction: eb.Error.Transaction}
		}
		return resp.StatusCode, &Error{Status: resp.StatusCode, Code: "http_error", Message: strings.TrimSpace(string(data))}
	}
	if out != nil {
		if w, ok := out.(io.Writer); ok {
			_, err = w.Write(data)
			return resp.StatusCode, err
		}
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// CreateOptions are the request options of CreateTransaction.
type CreateOptions struct {
	IdempotencyKey string
	NoWait         bool // answer at once (202) instead of when final
}

// CreateTransaction posts a transaction. It returns the transaction and
// the HTTP status (201, 200 for an idempotent replay, 202 when not waited).
func (c *Client) CreateTransaction(ctx context.Context, r TransactionRequest, o CreateOptions) (*Transaction, int, error) {
	h := http.Header{}
	if o.IdempotencyKey != "" {
		h.Set("Idempotency-Key", o.IdempotencyKey)
	}
	path := "/v1/transactions"
	if o.NoWait {
		path += "?wait=false"
	}
	var t Transaction
	code, err := c.Do(ctx, http.MethodPost, path, h, r, &t)
	if err != nil {
		return nil, code, err
	}
	return &t, code, nil
}

// Transaction gets one transaction with its journal.
func (c *Client) Transaction(ctx context.Context, id string) (*Transaction, error) {
	var t Transaction
	if _, err := c.Do(ctx, http.MethodGet, "/v1/transactions/"+url.PathEscape(id), nil, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Transactions searches transactions; query holds reference, status, date,
// op, batch, limit.
func (c *Client) Transactions(ctx context.Context, query url.Values) ([]*Transaction, error) {
	var out struct {
		Transactions []*Transaction `json:"transactions"`
	}
	path := "/v1/transactions"
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	if _, err := c.Do(ctx, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Transactions, nil
}

// Terminals lists the terminals.
func (c *Client) Terminals(ctx context.Context) ([]sterad.TerminalInfo, error) {
	var out struct {
		Terminals []sterad.TerminalInfo `json:"terminals"`
	}
	if _, err := c.Do(ctx, http.MethodGet, "/v1/terminals", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Terminals, nil
}

// Queue lists the store-and-forward queue.
func (c *Client) Queue(ctx context.Context) ([]sterad.QueueItem, QueueSummary, error) {
	var out struct {
		Queue   []sterad.QueueItem `json:"queue"`
		Summary QueueSummary       `json:"summary"`
	}
	_, err := c.Do(ctx, http.MethodGet, "/v1/queue", nil, nil, &out)
	return out.Queue, out.Summary, err
}

// Flush forwards the queue now.
func (c *Client) Flush(ctx context.Context) (FlushResult, error) {
	var out FlushResult
	_, err := c.Do(ctx, http.MethodPost, "/v1/queue/flush", nil, nil, &out)
	return out, err
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var out Status
	if _, err := c.Do(ctx, http.MethodGet, "/v1/status", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitFinal polls a transaction until it is no longer pending or ctx ends.
func (c *Client) WaitFinal(ctx context.Context, id string, every time.Duration) (*Transaction, error) {
	for {
		t, err := c.Transaction(ctx, id)
		if err != nil {
			return nil, err
		}
		if t.Status != string(sterad.StatusPending) {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(every):
		}
	}
}

// Vault lists the guarantee cards kept.
func (c *Client) Vault(ctx context.Context) ([]*sterad.VaultEntry, error) {
	var out struct {
		Vault []*sterad.VaultEntry `json:"vault"`
	}
	_, err := c.Do(ctx, http.MethodGet, "/v1/vault", nil, nil, &out)
	return out.Vault, err
}

// Purge destroys the card data no longer needed now.
func (c *Client) Purge(ctx context.Context) (*sterad.PurgeResult, error) {
	var out sterad.PurgeResult
	if _, err := c.Do(ctx, http.MethodPost, "/v1/vault/purge", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReleaseVault destroys the guarantee card of a cancelled reservation.
func (c *Client) ReleaseVault(ctx context.Context, reference string) (*sterad.VaultEntry, error) {
	var out struct {
		Released *sterad.VaultEntry `json:"released"`
	}
	if _, err := c.Do(ctx, http.MethodDelete, "/v1/vault/"+url.PathEscape(reference), nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Released, nil
}

// Reservation returns a reservation as stored.
func (c *Client) Reservation(ctx context.Context, reference string) (*sterad.Reservation, error) {
	var out sterad.Reservation
	if _, err := c.Do(ctx, http.MethodGet, "/v1/reservations/"+url.PathEscape(reference), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Batches lists the batches.
func (c *Client) Batches(ctx context.Context) ([]BatchView, error) {
	var out struct {
		Batches []BatchView `json:"batches"`
	}
	_, err := c.Do(ctx, http.MethodGet, "/v1/batches", nil, nil, &out)
	return out.Batches, err
}

// Batch returns one batch with its close progress.
func (c *Client) Batch(ctx context.Context, n int) (*BatchView, error) {
	var out BatchView
	if _, err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/batches/%d", n), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartClose starts closing the batch and returns its number at once.
func (c *Client) StartClose(ctx context.Context) (int, error) {
	var out struct {
		Batch int `json:"batch"`
	}
	_, err := c.Do(ctx, http.MethodPost, "/v1/batches/close?wait=false", nil, nil, &out)
	return out.Batch, err
}

// SettlementReport returns the settlement report between two dates (YYYY-MM-DD)
// as JSON into out, or as CSV when out is an io.Writer and csv is set.
func (c *Client) SettlementReport(ctx context.Context, from, to string, csv bool, out any) error {
	h := http.Header{}
	if csv {
		h.Set("Accept", "text/csv")
	}
	q := url.Values{"from": {from}, "to": {to}}
	_, err := c.Do(ctx, http.MethodGet, "/v1/reports/settlement?"+q.Encode(), h, nil, out)
	return err
}

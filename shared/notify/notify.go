// Package notify tells people how a backup or restore went: it writes a run's summary (a subject
// line, a readable text and the same as JSON) and sends it to the configured targets — a generic
// JSON webhook, chat services through shoutrrr, a heartbeat monitor and an SNS topic — each send
// retried within a time budget. A notification never fails a run: each target's outcome is
// returned for the report instead.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/nicholas-fedor/shoutrrr"
	shoutrrrtypes "github.com/nicholas-fedor/shoutrrr/pkg/types"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/retry"
)

// Defaults of the notifier.
const (
	// DefaultBudget bounds the time all sends of one run take together, retries included.
	DefaultBudget = 30 * time.Second
	// DefaultAttemptTimeout bounds one attempt of one send.
	DefaultAttemptTimeout = 10 * time.Second
	// DefaultMaxAttempts bounds the attempts of one send, the first included.
	DefaultMaxAttempts = 4
	// DefaultMaxBackoff caps the wait between two attempts.
	DefaultMaxBackoff = 5 * time.Second
	// DefaultFailuresShown is how many failures a summary names (report.json names them all).
	DefaultFailuresShown = 10
	// MaxSubjectRunes is the longest subject: SNS takes "less than 100 characters".
	MaxSubjectRunes = 99
	// NoError is the SNS error attribute of a run without an error (SNS refuses empty values).
	NoError = "none"
)

// When to notify (NOTIFY_ON).
const (
	OnAlways  = "always"
	OnFailure = "failure"
	OnChange  = "change" // a failure, or anything copied or deleted
)

// Target kinds, as report.Notification.Kind names them.
const (
	KindWebhook   = "webhook"
	KindChat      = "chat"
	KindHeartbeat = "heartbeat"
	KindSNS       = "sns"
)

// Variables are the environment variables ConfigFromEnv reads.
var Variables = []string{"NOTIFY_URLS", "NOTIFY_ON", "HEARTBEAT_URL", "NOTIFY_TOPIC_ARN", "NOTIFY_BUDGET_SECONDS", "CONSOLE_URL"}

// Config says where and when to send summaries.
type Config struct {
	// URLs are NOTIFY_URLS: http(s) URLs get the JSON summary POSTed, any other scheme goes
	// through shoutrrr (slack://, discord://, teams://, ntfy://, …).
	URLs []string
	// On is NOTIFY_ON: OnAlways (the default), OnFailure or OnChange. The heartbeat is pinged
	// after every run whatever On says: a monitor needs every success to notice the silence.
	On string
	// Heartbeat is HEARTBEAT_URL: GET on success, GET <url>/fail on failure.
	Heartbeat string
	// TopicARN is NOTIFY_TOPIC_ARN: the SNS topic the summary is published to.
	TopicARN string
	// ConsoleURL is CONSOLE_URL, the restore console's base URL (for the summary's link).
	ConsoleURL string
	// Budget is NOTIFY_BUDGET_SECONDS (default DefaultBudget).
	Budget time.Duration
}

// Enabled reports whether c names any target.
func (c Config) Enabled() bool { return len(c.URLs) > 0 || c.Heartbeat != "" || c.TopicARN != "" }

// ConfigFromEnv reads the Variables. Its error, a *fault.ConfigError, names a bad one; the
// reporter records it as a notification that failed rather than failing the run.
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{
		URLs:       r.List("NOTIFY_URLS"),
		On:         r.OneOf("NOTIFY_ON", OnAlways, OnAlways, OnFailure, OnChange),
		Heartbeat:  strings.TrimSpace(r.String("HEARTBEAT_URL", "")),
		TopicARN:   strings.TrimSpace(r.String("NOTIFY_TOPIC_ARN", "")),
		ConsoleURL: strings.TrimSpace(r.String("CONSOLE_URL", "")),
		Budget:     time.Duration(r.Int("NOTIFY_BUDGET_SECONDS", int64(DefaultBudget/time.Second), 1, 600)) * time.Second,
	}
	return c, r.Err()
}

// Wanted reports whether a run with summary s is to be notified under c.On (the heartbeat aside).
func (c Config) Wanted(s Summary) bool {
	switch c.On {
	case OnFailure:
		return s.Status != report.Succeeded
	case OnChange:
		return s.Status != report.Succeeded || s.Counts.Copied > 0 || s.Counts.Deleted > 0
	}
	return true
}

// SNS is what the notifier needs of an SNS client.
type SNS interface {
	Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error)
}

var _ SNS = (*sns.Client)(nil)

// Notifier sends summaries.
// New returns a Notifier for c whose SNS client, when the topic needs one, comes from the default
// AWS configuration (the function's role on Lambda).
func New(c Config) *Notifier {
	return &Notifier{Config: c, NewSNS: func(ctx context.Context) (SNS, error) {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		return sns.NewFromConfig(cfg), nil
	}}
}

// ConfigOutcomes is the outcome a notification setting that could not be read has: none when err
// is nil, else one, so that the report says why notifications went missing.
func ConfigOutcomes(err error) []report.Notification {
	if err == nil {
		return []report.Notification{}
	}
	return []report.Notification{{Target: "configuration", Status: report.NotificationError, Error: err.Error()}}
}

// Deliver sends s through n (when nil, a Notifier of cfg) and returns each target's outcome,
// the setting's error (cfgErr, ConfigOutcomes) first, logging every outcome that is not a send.
// It never fails the run it reports: the reporter's and the drill's one way to notify.
func Deliver(ctx context.Context, n *Notifier, cfg Config, cfgErr error, s Summary, logger *slog.Logger) []report.Notification {
	out := ConfigOutcomes(cfgErr)
	if n == nil {
		n = New(cfg)
	}
	if n.Config.Enabled() {
		out = append(out, n.Send(ctx, s)...)
	}
	for _, o := range out {
		if o.Status != report.NotificationSent {
			logger.WarnContext(ctx, "notification not sent", "target", o.Target, "kind", o.Kind, "error", o.Error)
		}
	}
	return out
}

type Notifier struct {
	Config Config
	// HTTP sends webhooks and heartbeats (default: a client without redirects to other hosts'
	// secrets: http.DefaultClient's transport).
	HTTP *http.Client
	// SNS publishes to Config.TopicARN; when nil, NewSNS makes one the first time.
	SNS SNS
	// NewSNS makes an SNS client (default: none, and the topic's send fails naming that).
	NewSNS func(ctx context.Context) (SNS, error)
	// Chat sends one shoutrrr URL (default: shoutrrr itself).
	Chat func(rawURL, message string, params map[string]string) error
	// Policy tunes the retries (default DefaultMaxAttempts and DefaultMaxBackoff).
	Policy retry.Policy
	// AttemptTimeout bounds one attempt (default DefaultAttemptTimeout).
	AttemptTimeout time.Duration
}

// Send sends s to every target c names and wanted, all at once, within the budget (and ctx),
// and returns each target's outcome. It never returns an error: a send that failed is an outcome.
func (n *Notifier) Send(ctx context.Context, s Summary) []report.Notification {
	c := n.Config
	budget := c.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	type job struct {
		target, kind string
		send         func(ctx context.Context) error
	}
	var jobs []job
	if c.Wanted(s) {
		body, _ := json.Marshal(s)
		text := s.Text()
		for i, u := range c.URLs {
			name := fmt.Sprintf("%s (NOTIFY_URLS #%d)", Redact(u), i+1)
			if isHTTP(u) {
				jobs = append(jobs, job{name, KindWebhook, func(ctx context.Context) error {
					return n.do(ctx, http.MethodPost, u, body)
				}})
				continue
			}
			jobs = append(jobs, job{name, KindChat, func(ctx context.Context) error {
				return n.chat(ctx, u, text, s.Subject)
			}})
		}
		if c.TopicARN != "" {
			jobs = append(jobs, job{c.TopicARN, KindSNS, func(ctx context.Context) error { return n.publish(ctx, s, text) }})
		}
	}
	if c.Heartbeat != "" {
		u := c.Heartbeat
		if s.Status != report.Succeeded {
			u = FailURL(u)
		}
		jobs = append(jobs, job{Redact(u), KindHeartbeat, func(ctx context.Context) error {
			return n.do(ctx, http.MethodGet, u, nil)
		}})
	}
	out := make([]report.Notification, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			attempts := 0
			p := n.Policy
			if p.MaxAttempts == 0 {
				p.MaxAttempts = DefaultMaxAttempts
			}
			if p.MaxBackoff == 0 {
				p.MaxBackoff = DefaultMaxBackoff
			}
			err := retry.Do(ctx, p, func(ctx context.Context, _ int) error {
				attempts++
				actx, cancel := context.WithTimeout(ctx, n.attemptTimeout())
				defer cancel()
				return j.send(actx)
			})
			out[i] = report.Notification{Target: j.target, Kind: j.kind, Status: report.NotificationSent, Attempts: attempts}
			if err != nil {
				out[i].Status, out[i].Error = report.NotificationError, redactError(err, j.target)
			}
		}()
	}
	wg.Wait()
	return out
}

func (n *Notifier) attemptTimeout() time.Duration {
	if n.AttemptTimeout > 0 {
		return n.AttemptTimeout
	}
	return DefaultAttemptTimeout
}

func isHTTP(u string) bool {
	l := strings.ToLower(u)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// FailURL is a heartbeat URL's failure form: <url>/fail (healthchecks.io, and Cronitor's
// telemetry URLs take ?state=fail instead; Uptime Kuma's push URL takes ?status=down).
func FailURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return strings.TrimRight(u, "/") + "/fail"
	}
	p.Path = strings.TrimRight(p.Path, "/") + "/fail"
	if p.RawPath != "" {
		p.RawPath = strings.TrimRight(p.RawPath, "/") + "/fail"
	}
	return p.String()
}

// Redact names a target without its secrets: its scheme and host, and "/…" when it has a path
// (Slack's and Discord's webhook tokens, ntfy topics and healthchecks.io check IDs are in the
// path or the user information, which is dropped, as is the query).
func Redact(raw string) string {
	p, err := url.Parse(raw)
	if err != nil || p.Scheme == "" {
		return "(an unparsable URL)"
	}
	out := p.Scheme + "://" + p.Host
	if strings.Trim(p.Path, "/") != "" || p.RawQuery != "" || p.Opaque != "" {
		out += "/…"
	}
	return out
}

// redactError is err's message with no trace of the URL's secret parts: Go's HTTP client quotes
// the whole URL in its errors.
func redactError(err error, target string) string {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = strings.ReplaceAll(msg, ue.URL, Redact(ue.URL))
		if p, perr := url.Parse(ue.URL); perr == nil {
			for _, secret := range []string{p.Path, p.RawQuery, p.User.String()} {
				if len(secret) > 1 {
					msg = strings.ReplaceAll(msg, secret, "/…")
				}
			}
		}
	}
	return report.Shorten(strings.ReplaceAll(msg, "\n", "; "), report.MaxTextInOutput)
}

// StatusError is an HTTP target's answer other than 2xx. 5xx, 408 and 429 are tried again.
type StatusError struct {
	StatusCode int
	Body       string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("HTTP %d", e.StatusCode)
	}
	return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Body)
}

// RetryableError tells shared/retry (through the SDK's retryable set) whether to try again.
func (e *StatusError) RetryableError() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout
}

// do sends one HTTP request; anything but 2xx is an error.
func (n *Notifier) do(ctx context.Context, method, u string, body []byte) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return retry.Permanent(err)
	}
	req.Header.Set("User-Agent", "bucketvault-notify/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := n.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode/100 != 2 {
		return &StatusError{StatusCode: resp.StatusCode, Body: strings.TrimSpace(string(snippet))}
	}
	return nil
}

// chat sends through shoutrrr, which takes no context: the send goes on in its goroutine until
// shoutrrr's own timeouts end it, and the attempt ends with ctx.
func (n *Notifier) chat(ctx context.Context, u, text, subject string) error {
	send := n.Chat
	if send == nil {
		send = func(rawURL, message string, params map[string]string) error {
			sender, err := shoutrrr.CreateSender(rawURL)
			if err != nil {
				return retry.Permanent(err)
			}
			p := shoutrrrtypes.Params(params)
			return errors.Join(sender.Send(message, &p)...)
		}
	}
	done := make(chan error, 1)
	go func() { done <- send(u, text, map[string]string{"title": subject}) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publish sends the summary to the SNS topic: Subject, the text as Message, and the status,
// error and kind as String message attributes that a subscription filter policy can match.
func (n *Notifier) publish(ctx context.Context, s Summary, text string) error {
	client := n.SNS
	if client == nil {
		if n.NewSNS == nil {
			return retry.Permanent(errors.New("no SNS client"))
		}
		c, err := n.NewSNS(ctx)
		if err != nil {
			return retry.Permanent(err)
		}
		client, n.SNS = c, c
	}
	_, err := client.Publish(ctx, PublishInput(n.Config.TopicARN, s, text))
	return err
}

// PublishInput is the SNS Publish request of a summary.
func PublishInput(topic string, s Summary, text string) *sns.PublishInput {
	errName := s.Error
	if errName == "" {
		errName = NoError
	}
	str := func(v string) snstypes.MessageAttributeValue {
		return snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return &sns.PublishInput{
		TopicArn: aws.String(topic),
		Subject:  aws.String(clip(s.Subject, MaxSubjectRunes)),
		Message:  aws.String(text),
		MessageAttributes: map[string]snstypes.MessageAttributeValue{
			"status": str(s.Status), "error": str(errName), "kind": str(s.Kind),
		},
	}
}

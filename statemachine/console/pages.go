package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/browse"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/planner"
	"github.com/bucketvault/bucketvault/shared/progress"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
	"github.com/bucketvault/bucketvault/shared/runlog"
	"github.com/bucketvault/bucketvault/shared/units"
)

var funcs = template.FuncMap{
	"bytes": units.Bytes,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"whenText": func(s string) string {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return s
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"duration": func(a, b string) string {
		t0, err0 := time.Parse(time.RFC3339Nano, a)
		t1, err1 := time.Parse(time.RFC3339Nano, b)
		if err0 != nil || err1 != nil {
			return "–"
		}
		return t1.Sub(t0).Round(time.Second).String()
	},
	"archived": func(class string) bool { return class == "GLACIER" || class == "DEEP_ARCHIVE" },
	"base":     func(key, prefix string) string { return strings.TrimPrefix(key, prefix) },
}

// render writes page with data; a template error becomes a 500 with one line.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	if id := identityFrom(r); id != nil {
		data["CSRF"] = id.CSRF
		data["User"] = id.User
		data["CanRestore"] = id.CanRestore
		_, data["SignOut"] = s.auth.(SignOuter)
	}
	var buf bytes.Buffer
	if err := s.pages[page].Execute(&buf, data); err != nil {
		s.opts.Logger.ErrorContext(r.Context(), "console page", "page", page, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "The page could not be shown.\n")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail shows an error page with one clear line.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", map[string]any{"Status": status, "Title": http.StatusText(status), "Message": msg})
}

// failErr shows err: invalid input as 400, a missing bucket as 502, anything else as 500.
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, err error) {
	var inv *fault.InvalidInput
	var nb *fault.BucketNotFound
	switch {
	case errors.As(err, &inv):
		s.fail(w, r, http.StatusBadRequest, inv.Msg)
	case errors.As(err, &nb):
		s.fail(w, r, http.StatusBadGateway, nb.Msg)
	default:
		s.opts.Logger.ErrorContext(r.Context(), "console", "path", r.URL.Path, "err", err)
		line, _, _ := strings.Cut(err.Error(), "\n")
		s.fail(w, r, http.StatusInternalServerError, line)
	}
}

func (s *Server) runs(w http.ResponseWriter, r *http.Request) {
	runs, err := runlog.List(r.Context(), s.opts.S3, s.opts.Run, DefaultRunsLimit)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "runs", map[string]any{"Runs": runs, "Limit": DefaultRunsLimit})
}

func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	run, err := runlog.Get(r.Context(), s.opts.S3, s.opts.Run, r.PathValue("name"))
	if err != nil {
		var inv *fault.InvalidInput
		if errors.As(err, &inv) {
			s.fail(w, r, http.StatusNotFound, inv.Msg)
			return
		}
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "run", map[string]any{"Run": run, "NoReport": run.Status == runlog.NoReport})
}

// localTime matches what <input type="datetime-local"> sends: a time without a zone.
var localTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$`)

// atParam is the first non-empty value of name: the moment picker sends both its time field and
// its list of backups under one name, and its script empties the one not used.
func atParam(q url.Values, name string) string {
	for _, v := range q[name] {
		if v = strings.TrimSpace(v); v != "" {
			if localTime.MatchString(v) {
				if len(v) == len("2006-01-02T15:04") {
					v += ":00"
				}
				v += "Z" // the page says its times are UTC
			}
			return v
		}
	}
	return ""
}

// moment resolves at ("" is now: the zero time).
func (s *Server) moment(ctx context.Context, at string) (time.Time, error) {
	if at == "" {
		return time.Time{}, nil
	}
	return runlog.Moment(ctx, s.opts.S3, s.opts.Run, at)
}

// snap is a backup run offered as a moment.
type snap struct{ Name, Label string }

// snapPoints are the newest successful backups, for the moment picker.
func (s *Server) snapPoints(ctx context.Context) []snap {
	runs, err := runlog.List(ctx, s.opts.S3, s.opts.Run, DefaultSnapPoints)
	if err != nil {
		return nil // the picker still has its time field
	}
	var out []snap
	for _, run := range runs {
		if run.Kind == runlog.Backup && run.FinishedAt != "" && !run.DryRun {
			out = append(out, snap{Name: run.Execution, Label: "after the backup of " + funcs["whenText"].(func(string) string)(run.FinishedAt) + " (" + strings.ToLower(run.Status) + ")"})
		}
	}
	return out
}

// folders are the folders between prefix and key, outermost first: for prefix "a/" and key
// "a/b/c/d.txt", "a/b/" and "a/b/c/".
func folders(prefix, key string) []string {
	var dirs []string
	for i := len(prefix); ; {
		j := strings.Index(key[i:], "/")
		if j < 0 {
			return dirs
		}
		i += j + 1
		dirs = append(dirs, key[:i])
	}
}

type crumb struct{ Name, Prefix string }

func crumbs(prefix string) []crumb {
	out := []crumb{{Name: "All files", Prefix: ""}}
	acc := ""
	for _, part := range strings.SplitAfter(prefix, "/") {
		if part == "" {
			continue
		}
		acc += part
		out = append(out, crumb{Name: strings.TrimSuffix(part, "/"), Prefix: acc})
	}
	return out
}

func (s *Server) browse(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	at, prefix, search := atParam(q, "at"), q.Get("prefix"), strings.TrimSpace(q.Get("q"))
	t, err := s.moment(r.Context(), at)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	// restoreAt is the moment a restore from this page brings back: now, when browsing now.
	restoreAt := at
	if restoreAt == "" {
		restoreAt = s.opts.Now().UTC().Format(time.RFC3339)
	}
	var entries []browse.Entry
	more := false
	stop := errors.New("enough")
	pg := folderPage{From: 1}
	if search == "" {
		// One page of the folder per request: after (the last entry of the page before, from
		// the link) is checked by browse.LsAfter; from only numbers the entries shown.
		after := q.Get("after")
		if after != "" {
			if pg.From, err = pageFrom(q.Get("from")); err != nil {
				s.failErr(w, r, err)
				return
			}
		}
		entries, pg.Next, err = browse.Page(r.Context(), s.opts.S3, s.opts.Backup, prefix, after, t, DefaultFolderEntries)
		pg.Paged, pg.To, pg.NextFrom = after != "" || pg.Next != "", pg.From+len(entries)-1, pg.From+len(entries)
	} else {
		// Search: every key under prefix as it was at the moment, in one listing, matching
		// names; a folder (first met with its first key) matches by its own name.
		needle := strings.ToLower(search)
		match := func(e browse.Entry) error {
			if !strings.Contains(strings.ToLower(path.Base(e.Key)), needle) {
				return nil
			}
			if len(entries) == DefaultSearchMatches {
				more = true
				return stop
			}
			entries = append(entries, e)
			return nil
		}
		var open []string // the folders of the previous key, outermost first
		err = browse.Walk(r.Context(), s.opts.S3, s.opts.Backup, prefix, t, func(e browse.Entry) error {
			dirs := folders(prefix, e.Key)
			for i, d := range dirs {
				if i < len(open) && open[i] == d {
					continue // keys come in order: a folder's keys are together
				}
				if err := match(browse.Entry{Key: d, Dir: true}); err != nil {
					return err
				}
			}
			open = dirs
			return match(e)
		})
	}
	if err != nil && !errors.Is(err, stop) {
		s.failErr(w, r, err)
		return
	}
	atLocal := "" // the time field shows a time given as one, not a backup's name
	if _, isTime, _ := restoreinput.ParseMoment(at); isTime && at != "" {
		atLocal = t.UTC().Format("2006-01-02T15:04:05")
	}
	s.render(w, r, http.StatusOK, "browse", map[string]any{
		"At": at, "AtLocal": atLocal, "Moment": t, "RestoreAt": restoreAt, "Prefix": prefix, "Q": search,
		"Crumbs": crumbs(prefix), "Entries": entries, "More": more, "Page": pg,
		"Limit": DefaultFolderEntries, "SearchLimit": DefaultSearchMatches, "Snaps": s.snapPoints(r.Context()),
	})
}

// folderPage is where a page of a folder stands: entries From to To (counted from 1) of the
// folder, Next the continuation of the following page ("" on the last), NextFrom its first
// number; Paged when the folder has more than one page.
type folderPage struct {
	From, To, NextFrom int
	Next               string
	Paged              bool
}

// FromText and ToText are the page's numbers as people write them ("1,001").
func (p folderPage) FromText() string { return thousands(p.From) }
func (p folderPage) ToText() string   { return thousands(p.To) }

// maxPageFrom bounds the entry number a page link may carry.
const maxPageFrom = 1 << 40

// pageFrom reads the number of a page's first entry from a link: 2 or more (the first page
// has no continuation).
func pageFrom(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 2 || n > maxPageFrom {
		return 0, &fault.InvalidInput{Msg: "The page link is not valid: open the folder again and use Next page."}
	}
	return n, nil
}

// thousands writes n with commas between groups of three digits: 12,345.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// versionRow is a version with the backup run that wrote it.
type versionRow struct {
	browse.Version
	Run string
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		s.fail(w, r, http.StatusBadRequest, "Which file? The link has no key.")
		return
	}
	versions, err := browse.Versions(r.Context(), s.opts.S3, s.opts.Backup, key)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	rows := make([]versionRow, len(versions))
	attr, aerr := runlog.NewAttributor(r.Context(), s.opts.S3, s.opts.Run)
	for i, v := range versions {
		rows[i].Version = v
		if aerr == nil {
			rows[i].Run, _ = attr.Run(r.Context(), v.LastModified)
		}
	}
	s.render(w, r, http.StatusOK, "history", map[string]any{"Key": key, "Versions": rows, "Crumbs": crumbs(key[:strings.LastIndex(key, "/")+1])})
}

// safeFilename is the last part of key with anything but letters, digits, '.', '-' and '_'
// replaced, for Content-Disposition.
func safeFilename(key string) string {
	name := key[strings.LastIndex(key, "/")+1:]
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	name = strings.TrimLeft(string(b), ".")
	if name == "" {
		return "download"
	}
	return name
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key, versionID := q.Get("key"), q.Get("versionId")
	if key == "" || versionID == "" {
		s.fail(w, r, http.StatusBadRequest, "Which version? The link needs a key and a versionId.")
		return
	}
	if s.opts.Presign != nil {
		u, err := s.opts.Presign(r.Context(), s.opts.Backup, key, versionID, safeFilename(key))
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		http.Redirect(w, r, u, http.StatusSeeOther)
		return
	}
	out, err := s.opts.S3.GetObject(r.Context(), &s3.GetObjectInput{Bucket: aws.String(s.opts.Backup), Key: aws.String(key), VersionId: aws.String(versionID)})
	switch {
	case fault.IsCode(err, "InvalidObjectState"):
		s.fail(w, r, http.StatusConflict, "This version is archived: restore it to thaw it first.")
		return
	case fault.IsCode(err, "NoSuchKey", "NoSuchVersion", "MethodNotAllowed", "InvalidArgument"):
		s.fail(w, r, http.StatusNotFound, "There is no such version of this file (a deleted marker has no content).")
		return
	case err != nil:
		s.failErr(w, r, fmt.Errorf("read s3://%s/%s version %s: %w", s.opts.Backup, key, versionID, err))
		return
	}
	defer out.Body.Close()
	name := safeFilename(key)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, name, url.PathEscape(key[strings.LastIndex(key, "/")+1:])))
	if out.ContentLength != nil {
		w.Header().Set("Content-Length", fmt.Sprint(*out.ContentLength))
	}
	if _, err := io.Copy(w, out.Body); err != nil {
		s.opts.Logger.WarnContext(r.Context(), "download cut", "key", key, "err", err)
	}
}

func (s *Server) diff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, to, prefix := atParam(q, "from"), atParam(q, "to"), q.Get("prefix")
	data := map[string]any{"From": from, "To": to, "Prefix": prefix, "Snaps": s.snapPoints(r.Context()), "Limit": DefaultDiffChanges}
	if from == "" {
		s.render(w, r, http.StatusOK, "diff", data)
		return
	}
	tf, err := s.moment(r.Context(), from)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	tt, err := s.moment(r.Context(), to)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	var changes []browse.Change
	stop := errors.New("enough")
	more := false
	err = browse.Diff(r.Context(), s.opts.S3, s.opts.Backup, prefix, tf, tt, func(c browse.Change) error {
		if len(changes) == DefaultDiffChanges {
			more = true
			return stop
		}
		changes = append(changes, c)
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		s.failErr(w, r, err)
		return
	}
	data["Changes"], data["More"], data["Compared"] = changes, more, true
	s.render(w, r, http.StatusOK, "diff", data)
}

// selection is what a restore form carries.
type selection struct {
	At, VersionID   string
	Keys, Prefixes  []string
	To, ToPrefix    string
	Overwrite       bool
	Exact           bool   // an exact rollback: also remove what did not exist at the moment
	ConfirmRemovals *int64 // the removals a person confirmed on an exact rollback's preview
	DefaultToPrefix string
}

// readSelection reads the selection from a query or a form: key and prefix (repeated), and
// select (the browse page's check boxes: a value ending in "/" is a folder).
func readSelection(v url.Values) selection {
	sel := selection{At: atParam(v, "at"), VersionID: v.Get("versionId"), To: v.Get("to"), ToPrefix: v.Get("toPrefix"),
		Overwrite: v.Get("overwrite") != "", Exact: v.Get("exact") != ""}
	add := func(list *[]string, x string) {
		if x != "" && !slices.Contains(*list, x) {
			*list = append(*list, x)
		}
	}
	for _, k := range v["key"] {
		add(&sel.Keys, k)
	}
	for _, p := range v["prefix"] {
		add(&sel.Prefixes, p)
	}
	for _, x := range v["select"] {
		if strings.HasSuffix(x, "/") {
			add(&sel.Prefixes, x)
		} else {
			add(&sel.Keys, x)
		}
	}
	return sel
}

func (s *Server) restoreForm(w http.ResponseWriter, r *http.Request) {
	sel := readSelection(r.URL.Query())
	sel.DefaultToPrefix = "restored/" + s.opts.Now().UTC().Format("2006-01-02") + "/"
	if sel.At == "" && sel.VersionID == "" {
		s.fail(w, r, http.StatusBadRequest, "Pick a moment first: open Browse, choose “As it was at”, then Restore….")
		return
	}
	s.render(w, r, http.StatusOK, "restore", map[string]any{"Sel": sel, "Targets": s.allowedTargets(), "Source": s.opts.Source, "AllowExact": s.opts.AllowExact})
}

// input builds the restore input of a posted form. A selection of files and folders together is
// sent as the files under the folders at the moment plus the files (restore input takes keys or
// prefixes, not both), up to DefaultMaxSelected keys.
func (s *Server) input(ctx context.Context, sel selection, dryRun bool, user string) ([]byte, error) {
	if !slices.Contains(s.allowedTargets(), sel.To) {
		return nil, &fault.InvalidInput{Msg: fmt.Sprintf("%q is not a bucket this console may restore into", sel.To)}
	}
	if sel.Exact && !s.opts.AllowExact {
		return nil, &fault.InvalidInput{Msg: "exact rollback is not enabled in this deployment"}
	}
	overwrite := sel.Overwrite || sel.Exact // exact replaces what differs
	in := restoreinput.Options{At: sel.At, VersionID: sel.VersionID, TargetBucket: sel.To, TargetPrefix: sel.ToPrefix,
		Overwrite: &overwrite, DryRun: dryRun, RequestedBy: user, Exact: sel.Exact, ConfirmRemovals: sel.ConfirmRemovals}
	switch {
	case len(sel.Keys) > 0 && len(sel.Prefixes) > 0:
		keys, err := s.expand(ctx, sel)
		if err != nil {
			return nil, err
		}
		in.Keys = keys
	case len(sel.Keys) > 0:
		in.Keys = sel.Keys
	default:
		in.Prefixes = sel.Prefixes
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	if _, err := restoreinput.Parse(b); err != nil {
		return nil, err
	}
	return b, nil
}

// expand lists the files under sel's folders as they were at sel.At, plus sel's files.
func (s *Server) expand(ctx context.Context, sel selection) ([]string, error) {
	t, err := s.moment(ctx, sel.At)
	if err != nil {
		return nil, err
	}
	keys := slices.Clone(sel.Keys)
	tooMany := &fault.InvalidInput{Msg: fmt.Sprintf("the selected folders hold more than %d files: restore the folders and the single files in two restores", DefaultMaxSelected)}
	for _, p := range sel.Prefixes {
		err := browse.Walk(ctx, s.opts.S3, s.opts.Backup, p, t, func(e browse.Entry) error {
			if slices.Contains(keys, e.Key) {
				return nil
			}
			if len(keys) == DefaultMaxSelected {
				return tooMany
			}
			keys = append(keys, e.Key)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// runName is a new restore execution's name, in the form localrun gives and runlog reads.
func (s *Server) runName() string {
	return runlog.NewName(runlog.Restore, s.opts.Now())
}

// runState is what /api/runs/<name> answers.
type runState struct {
	Status   string         `json:"status"`
	Batches  int            `json:"batches"`
	Done     int            `json:"done"`
	Objects  int64          `json:"objects"`
	Bytes    int64          `json:"bytes"`
	Finished bool           `json:"finished"`
	Report   *report.Report `json:"report,omitempty"`
	// The rate since the run started, as the run bucket's clock shows it: to its report's
	// finishedAt, or to its newest outcome file while it runs; RateText says it in words.
	StartedAt        string  `json:"startedAt,omitempty"`
	ObjectsPerSecond float64 `json:"objectsPerSecond"`
	BytesPerSecond   float64 `json:"bytesPerSecond"`
	RateText         string  `json:"rateText,omitempty"`
	// A restore waiting for archived versions to thaw: how many, since when, the documented
	// wait (planner.ThawTime) and when that ends; ThawText says it in words.
	Thawing      int64  `json:"thawing,omitempty"`
	ThawSince    string `json:"thawSince,omitempty"`
	ThawExpected string `json:"thawExpected,omitempty"`
	ThawReadyBy  string `json:"thawReadyBy,omitempty"`
	ThawDeepBy   string `json:"thawDeepReadyBy,omitempty"`
	ThawText     string `json:"thawText,omitempty"`
}

// withRate sets the rate of objects and bytes from start to end.
func (st *runState) withRate(start, end time.Time) {
	st.ObjectsPerSecond, st.BytesPerSecond = progress.Rate(st.Objects, st.Bytes, start, end)
	if !start.IsZero() {
		st.StartedAt = start.UTC().Format(time.RFC3339)
	}
	if st.ObjectsPerSecond > 0 || st.BytesPerSecond > 0 {
		// Slow runs read better per minute than as "0.0 files per second".
		per, objs, byts := "second", st.ObjectsPerSecond, st.BytesPerSecond
		if objs < 1 {
			per, objs, byts = "minute", objs*60, byts*60
		}
		st.RateText = fmt.Sprintf("About %s files and %s per %s since the run started.",
			strconv.FormatFloat(objs, 'f', 1, 64), units.Bytes(int64(byts)), per)
	}
}

// withThaw describes the wait for n archived versions asked to thaw at since. The run bucket
// does not record the retrieval tier: the expected wait is the documented time of the tier a
// restore asks for unless told otherwise (restoreinput.DefaultThawTier), the one this console
// uses, for Glacier Flexible Retrieval and, as the latest, for Deep Archive.
func (st *runState) withThaw(n int64, since time.Time) {
	tier := restoreinput.DefaultThawTier
	usual := planner.ThawTime(tier, string(types.StorageClassGlacier))
	deep := planner.ThawTime(tier, string(types.StorageClassDeepArchive))
	at := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
	st.Thawing, st.ThawExpected = n, usual.String()
	files := "archived files"
	if n == 1 {
		files = "archived file"
	}
	if since.IsZero() {
		st.ThawText = fmt.Sprintf("Waiting for %s %s to be brought back from the archive. Copying starts when all of them are ready.", thousands(int(n)), files)
		return
	}
	st.ThawSince, st.ThawReadyBy, st.ThawDeepBy = since.UTC().Format(time.RFC3339), since.Add(usual).UTC().Format(time.RFC3339), since.Add(deep).UTC().Format(time.RFC3339)
	st.ThawText = fmt.Sprintf("Waiting for %s %s to be brought back from the archive, asked for at %s. "+
		"Amazon S3 says this takes up to %s (up to %s for files in Deep Archive), so they should be ready by about %s (%s for Deep Archive). "+
		"Copying starts when all of them are ready; you can close this page and come back.",
		thousands(int(n)), files, at(since), hours(usual), hours(deep), at(since.Add(usual)), at(since.Add(deep)))
}

// hours writes a documented wait in words: "5 hours", "5 minutes".
func hours(d time.Duration) string {
	if d < time.Hour {
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	return fmt.Sprintf("%d hours", int(d/time.Hour))
}

// Statuses of a run without a report.
const (
	StatusStarting = "STARTING" // started, no file written yet
	StatusRunning  = "RUNNING"
)

// state reads a run's report, or its progress while it has none; found is false when no such
// run exists (and this console did not just start it).
func (s *Server) state(ctx context.Context, name string) (st runState, found bool, err error) {
	run, err := runlog.Get(ctx, s.opts.S3, s.opts.Run, name)
	var inv *fault.InvalidInput
	switch {
	case errors.As(err, &inv):
		// No file yet: a restore just started, or no such run.
		if x, xerr := s.opts.Execution(ctx, name); xerr == nil {
			if x.Status != Running {
				return runState{Status: x.Status, Finished: true, Report: &report.Report{Status: report.Failed, Execution: name, Error: x.Error, Cause: x.Cause}}, true, nil
			}
			return runState{Status: StatusStarting}, true, nil
		} else if !errors.Is(xerr, ErrNoSuchExecution) {
			return st, false, xerr
		}
		return st, false, nil
	case err != nil:
		return st, false, err
	}
	if run.Status != runlog.NoReport {
		s.mu.Lock()
		delete(s.watch, name)
		s.mu.Unlock()
		rep := run.Report
		st := runState{Status: rep.Status, Batches: int(rep.Batches), Done: int(rep.Batches - rep.FailedBatches),
			Objects: rep.Copied + rep.Deleted + rep.Failed + rep.Skipped, Bytes: rep.BytesCopied, Finished: true, Report: &rep}
		st.withRate(reportTime(rep.StartedAt), reportTime(rep.FinishedAt))
		return st, true, nil
	}
	s.mu.Lock()
	wt := s.watch[name]
	if wt == nil {
		wt = progress.NewWatcher(s.opts.S3, s.opts.Run, name)
		s.watch[name] = wt
	}
	s.mu.Unlock()
	snap, err := wt.Poll(ctx)
	if err != nil {
		return st, false, err
	}
	st = runState{Status: StatusRunning, Batches: snap.Batches, Done: snap.Done, Objects: snap.Objects, Bytes: snap.Bytes}
	st.withRate(reportTime(run.StartedAt), snap.LastOutcome)
	if snap.Thawing > 0 && snap.Done == 0 {
		st.withThaw(snap.Thawing, snap.ThawSince)
	}
	return st, true, nil
}

// reportTime reads a report's RFC 3339 time; zero when there is none.
func reportTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func (s *Server) restoreProgress(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, found, err := s.state(r.Context(), name)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	if !found {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no restore named %q.", name))
		return
	}
	s.render(w, r, http.StatusOK, "progress", map[string]any{"Name": name, "State": st})
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, found, err := s.state(r.Context(), name)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case err != nil:
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
	case !found:
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf("no run named %q", name)})
	default:
		json.NewEncoder(w).Encode(st)
	}
}

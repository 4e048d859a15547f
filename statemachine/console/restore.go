package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
)

// ErrNoSuchExecution is what Options.Execution returns for a name it does not know.
var ErrNoSuchExecution = errors.New("no such execution")

// Execution is what Options.Execution tells of a restore execution.
type Execution struct {
	Input []byte
	// Status is Step Functions' (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED); Error and
	// Cause say why one failed.
	Status, Error, Cause string
}

// Running is Execution.Status of an execution that has not ended.
const Running = "RUNNING"

// DefaultPreviewRefresh is how often the page of a preview still running reloads itself, in
// seconds (a meta refresh: no script needed).
const DefaultPreviewRefresh = 2

// preview starts a dry run of the posted selection and sends the browser to its page. A preview
// is an execution of the restore state machine like any other: on AWS it may take longer than
// one web request may last.
func (s *Server) preview(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	in, err := s.input(r.Context(), readSelection(r.PostForm), true, identityFrom(r).User)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	name := s.runName()
	if err := s.opts.StartRestore(r.Context(), name, in); err != nil {
		s.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, "/previews/"+url.PathEscape(name), http.StatusSeeOther)
}

// previewOf reads the preview execution name and its input.
func (s *Server) previewOf(ctx context.Context, name string) (Execution, restoreinput.Options, error) {
	x, err := s.opts.Execution(ctx, name)
	if errors.Is(err, ErrNoSuchExecution) {
		return x, restoreinput.Options{}, &fault.InvalidInput{Msg: fmt.Sprintf("There is no preview named %q.", name)}
	}
	if err != nil {
		return x, restoreinput.Options{}, err
	}
	in, err := restoreinput.Parse(x.Input)
	if err != nil {
		return x, in, err
	}
	if !in.DryRun {
		return x, in, &fault.InvalidInput{Msg: fmt.Sprintf("%q is a restore, not a preview.", name)}
	}
	return x, in, nil
}

// selectionOf is the selection a restore input restores, for showing it again.
func selectionOf(in restoreinput.Options) selection {
	prefixes := in.Prefixes
	if in.Prefix != "" {
		prefixes = append(prefixes, in.Prefix)
	}
	return selection{At: in.At, VersionID: in.VersionID, Keys: in.Keys, Prefixes: prefixes, To: in.TargetBucket, ToPrefix: in.TargetPrefix,
		Overwrite: in.Overwrite == nil || *in.Overwrite, Exact: in.Exact}
}

// previewPage shows a preview: "preparing" (reloading itself) while its dry run runs, then what
// the restore would do and the button that starts it.
func (s *Server) previewPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	x, in, err := s.previewOf(r.Context(), name)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	st, _, err := s.state(r.Context(), name)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	data := map[string]any{"Name": name, "Sel": selectionOf(in), "Refresh": DefaultPreviewRefresh}
	if !st.Finished && x.Status != Running {
		// Ended without a report: the run could not even start planning.
		msg := x.Cause
		if msg == "" {
			msg = x.Status + " " + x.Error
		}
		s.fail(w, r, http.StatusUnprocessableEntity, "The preview found a problem: "+msg)
		return
	}
	if !st.Finished {
		data["Pending"] = true
		s.render(w, r, http.StatusOK, "preview", data)
		return
	}
	rep := st.Report
	if rep.Status != report.Succeeded {
		msg := rep.Cause
		if msg == "" {
			msg = rep.Error
		}
		s.fail(w, r, http.StatusUnprocessableEntity, "The preview found a problem: "+msg)
		return
	}
	data["Report"], data["Objects"] = rep, rep.New+rep.Changed
	data["Removals"] = removalNames(rep)
	s.render(w, r, http.StatusOK, "preview", data)
}

// removalNames are the keys an exact preview would remove, from its report's notes (bounded
// like the report's other notes).
func removalNames(rep *report.Report) []report.Note {
	var out []report.Note
	for _, n := range rep.Notes {
		if strings.HasPrefix(n.Note, report.NoteWouldBeRemoved) {
			out = append(out, n)
		}
	}
	return out
}

// startRestore starts a restore: the one a preview showed (form field preview), or the posted
// selection.
func (s *Server) startRestore(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	user := identityFrom(r).User
	var in []byte
	var err error
	if p := r.PostForm.Get("preview"); p != "" {
		in, err = s.fromPreview(r.Context(), p, r.PostForm, user)
	} else {
		in, err = s.input(r.Context(), readSelection(r.PostForm), false, user)
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	name := s.runName()
	if err := s.opts.StartRestore(r.Context(), name, in); err != nil {
		s.failErr(w, r, err)
		return
	}
	s.opts.Logger.InfoContext(r.Context(), "restore started", "execution", name, "requestedBy", user)
	http.Redirect(w, r, "/restores/"+url.PathEscape(name), http.StatusSeeOther)
}

// fromPreview is the input of the restore a preview showed: the same selection, target and
// options, asked for by user, and for an exact rollback the number of removals the person
// confirmed (the planner refuses the run if the plan's count differs).
func (s *Server) fromPreview(ctx context.Context, name string, form url.Values, user string) ([]byte, error) {
	_, in, err := s.previewOf(ctx, name)
	if err != nil {
		return nil, err
	}
	sel := selectionOf(in)
	if in.Exact {
		if form.Get("confirmed") == "" {
			return nil, &fault.InvalidInput{Msg: "Tick the box that confirms the files to be removed, then start the restore again."}
		}
		n, err := strconv.ParseInt(form.Get("confirmRemovals"), 10, 64)
		if err != nil || n < 0 {
			return nil, &fault.InvalidInput{Msg: "The number of files to remove is missing from the form: preview again."}
		}
		sel.ConfirmRemovals = &n
	}
	return s.input(ctx, sel, false, user)
}

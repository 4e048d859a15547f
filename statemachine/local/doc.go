// Package local runs an Amazon States Language (JSONPath) state machine in-process, the way
// AWS Step Functions runs the same definition, and refuses every feature it does not implement.
//
// Lambda tasks call Go handlers through the same JSON boundary Lambda uses (lambda.Handler's
// Invoke), and a Distributed Map's ItemReader and ResultWriter make real S3 calls. The
// semantics followed are those of the project's ASL semantics reference: where AWS and the
// States Language specification differ, the executor does what AWS does.
package local

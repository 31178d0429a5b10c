package weft

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error so that each transport can map it to its own
// codes in exactly one place (see http.statusOf).
type Kind uint8

const (
	Other        Kind = iota // unclassified: treated as Internal
	Invalid                  // the caller sent something malformed
	NotFound                 // the thing does not exist or is not the caller's
	Conflict                 // the request clashes with the current state
	Unauthorized             // missing or bad credentials
	TooLarge                 // a body or image over a limit
	Unavailable              // a dependency (fetch target, store) is down
	Internal                 // a bug or an unexpected failure
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case Conflict:
		return "conflict"
	case Unauthorized:
		return "unauthorized"
	case TooLarge:
		return "too large"
	case Unavailable:
		return "unavailable"
	case Internal:
		return "internal"
	}
	return "other"
}

// Error is the one error type of Weft. Op names the operation that failed
// ("store.Catalog", "fetch.Get"), Msg is a message fit for the API caller,
// Err the underlying cause (never shown to callers).
type Error struct {
	Op   string
	Kind Kind
	Msg  string
	Err  error
}

// E builds an *Error from its arguments, in the manner of upspin's errors.E:
// a string is the Op, a Kind the kind, an error the cause, and the result of
// Msgf the caller-facing message. When the cause is itself an *Error and no
// Kind was given, the kind is inherited.
func E(args ...any) error {
	e := &Error{}
	for _, a := range args {
		switch a := a.(type) {
		case string:
			e.Op = a
		case Kind:
			e.Kind = a
		case msg:
			e.Msg = string(a)
		case *Error:
			e.Err = a
		case error:
			e.Err = a
		case nil:
		default:
			panic(fmt.Sprintf("weft.E: bad argument %T", a))
		}
	}
	var inner *Error
	if e.Kind == Other && errors.As(e.Err, &inner) {
		e.Kind = inner.Kind
	}
	return e
}

type msg string

// Msgf formats a caller-facing message for E.
func Msgf(format string, args ...any) msg { return msg(fmt.Sprintf(format, args...)) }

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Msg != "" {
		b.WriteString(e.Msg)
	} else if e.Kind != Other {
		b.WriteString(e.Kind.String())
	}
	if e.Err != nil {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), ": ") {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf reports the kind of err: the first Kind other than Other found
// along its chain, Internal for any other non-nil error.
func KindOf(err error) Kind {
	if err == nil {
		return Other
	}
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			break
		}
		if e.Kind != Other {
			return e.Kind
		}
		err = e.Err
	}
	return Internal
}

// MessageOf returns the caller-facing message of err: the outermost Msg along
// its chain, or a generic text for its kind. Causes are never leaked.
func MessageOf(err error) string {
	for e := err; e != nil; {
		var we *Error
		if !errors.As(e, &we) {
			break
		}
		if we.Msg != "" {
			return we.Msg
		}
		e = we.Err
	}
	switch KindOf(err) {
	case Invalid:
		return "Invalid request."
	case NotFound:
		return "Not found."
	case Conflict:
		return "Conflict with the current state."
	case Unauthorized:
		return "Unauthorized: send a valid access token in the Authorization header."
	case TooLarge:
		return "Request too large."
	case Unavailable:
		return "Service unavailable, try again later."
	}
	return "Internal server error."
}

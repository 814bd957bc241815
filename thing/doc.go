// Package thing is the thing model that persons' nodes, things' nodes and
// the server share: what a thing says it can do (Description, the shape of
// a W3C Web of Things Thing Description without its transport forms),
// commands and the feedback that answers them (the payloads of messages of
// type command and feedback), the trace that ties a chain of commands to
// whoever started it, and the rules by which one thing's events command
// another. It depends only on wire; who may command whom is wire.MayWrite's
// and this package's Authorize.
//
// A command travels as a message of MsgType "command" in the dm of its
// sender and the thing; every answer is a message of MsgType "feedback" in
// a dm of the thing:
//
//	alice ──command{action,input,expires,trace}──▶ lamp
//	alice ◀──feedback{kind:ack,cmd,status:accepted}── lamp
//	alice ◀──feedback{kind:result,cmd,status:done,output}── lamp
//	alice ◀──feedback{kind:state,props,rev,cause:cmd}── lamp
package thing

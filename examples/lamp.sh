#!/bin/sh
# lamp.sh: an example device program for a thing's node, a dimmable lamp,
# in POSIX sh with nothing but sed. Run it as the node's handler:
#
#   mqtter node --home DIR --server tcp://HOST:PORT --user lamp --thing-handler 'sh lamp.sh'
#
# The node writes each command it accepted as one JSON line on stdin (its
# fields in the order kind, cmd, from, action, input, write, expires,
# trace); the lamp answers with JSON lines on stdout: its description once,
# then for each command its new state (caused by that command) and the
# result. A real lamp would switch its relay where this one sets $on.
on=false
level=100

echo '{"kind":"description","description":{"version":1,"title":"A dimmable lamp","properties":{"on":{"type":"boolean","observable":true},"brightness":{"type":"integer","minimum":0,"maximum":100,"unit":"percent","observable":true}},"actions":{"toggle":{"title":"Switch on or off"},"set":{"title":"Switch and dim","input":{"type":"object","properties":{"on":{"type":"boolean"},"brightness":{"type":"integer","minimum":0,"maximum":100}}},"idempotent":true}}}}'

state() {
	printf '{"kind":"state","cause":"%s","props":{"on":%s,"brightness":%s}}\n' "$1" "$on" "$level"
}

# field ARGS NAME prints the bare value (true, false, a number) of NAME.
field() {
	printf '%s' "$1" | sed -n "s/.*\"$2\":\([a-z0-9]*\).*/\1/p"
}

state local
while IFS= read -r line; do
	cmd=$(printf '%s' "$line" | sed -n 's/.*"cmd":"\([^"]*\)".*/\1/p')
	action=$(printf '%s' "$line" | sed -n 's/.*"action":"\([^"]*\)".*/\1/p')
	if [ -z "$cmd" ]; then
		echo "lamp: not a command: $line" >&2
		continue
	fi
	args=${line%%\"expires\"*} # input and write come before expires
	case $action in
	toggle)
		if [ "$on" = true ]; then on=false; else on=true; fi
		;;
	set | '') # set, or properties written
		v=$(field "$args" on)
		[ -n "$v" ] && on=$v
		v=$(field "$args" brightness)
		[ -n "$v" ] && level=$v
		;;
	*)
		printf '{"kind":"result","cmd":"%s","status":"failed","error":"no such action"}\n' "$cmd"
		continue
		;;
	esac
	state "$cmd"
	printf '{"kind":"result","cmd":"%s","status":"done","output":{"on":%s,"brightness":%s}}\n' "$cmd" "$on" "$level"
done

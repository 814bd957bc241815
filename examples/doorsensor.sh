#!/bin/sh
# doorsensor.sh: an example device program for a thing's node, a door
# sensor, in POSIX sh with nothing but sed. Run it as the node's handler:
#
#   mqtter node --home DIR --server tcp://HOST:PORT --user door --thing-handler 'sh doorsensor.sh'
#
# A real sensor reports by itself (a state line and an "opened" event when
# the contact opens); for a demo, the actions open and close play the door.
# With a rule "when door reports opened, lamp toggles", made by a person
# bound to both, opening the door switches the lamp.
open=false

echo '{"kind":"description","description":{"version":1,"title":"A door sensor","properties":{"open":{"type":"boolean","readOnly":true,"observable":true}},"events":{"opened":{"title":"The door opened","data":{"type":"object"}}},"actions":{"open":{"title":"Open the door (demo)"},"close":{"title":"Close the door (demo)"}}}}'

while IFS= read -r line; do
	cmd=$(printf '%s' "$line" | sed -n 's/.*"cmd":"\([^"]*\)".*/\1/p')
	action=$(printf '%s' "$line" | sed -n 's/.*"action":"\([^"]*\)".*/\1/p')
	if [ -z "$cmd" ]; then
		echo "doorsensor: not a command: $line" >&2
		continue
	fi
	was=$open
	case $action in
	open) open=true ;;
	close) open=false ;;
	*)
		printf '{"kind":"result","cmd":"%s","status":"failed","error":"no such action"}\n' "$cmd"
		continue
		;;
	esac
	printf '{"kind":"state","cause":"%s","props":{"open":%s}}\n' "$cmd" "$open"
	if [ "$open" = true ] && [ "$was" = false ]; then
		printf '{"kind":"event","event":"opened","cause":"%s","data":{"open":true}}\n' "$cmd"
	fi
	printf '{"kind":"result","cmd":"%s","status":"done","output":{"open":%s}}\n' "$cmd" "$open"
done

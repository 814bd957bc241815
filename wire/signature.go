package wire

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// signingDomain starts the signed bytes, so a message signature can never be
// mistaken for a signature over anything else the same key signs.
const signingDomain = "mqtter/msg/v1\x00"

// sigSize is the length of an Ed25519 signature.
const sigSize = 64

// ErrBadSignature is wrapped by Verify's errors: the signature is missing,
// malformed, made by another key than Device's, or over other content.
var ErrBadSignature = errors.New("bad signature")

// SigningBytes returns the canonical bytes the signature covers: every field
// but SeqId and Sig, in the layout the package doc draws. It fails, with an
// error wrapping ErrBadMessage, only when the payload is not JSON that
// CanonicalJSON accepts. It does not otherwise validate the message.
func (m *Message) SigningBytes() ([]byte, error) {
	payload, err := CanonicalJSON(m.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: Payload: %w", ErrBadMessage, err)
	}
	var timeBuf [20]byte
	created := strconv.AppendInt(timeBuf[:0], m.TimeCreate, 10)

	n := len(signingDomain) + 7*binary.MaxVarintLen64 + len(m.MsgId) + len(m.Feeds) +
		len(m.MsgType) + len(m.From) + len(payload) + len(created) + len(m.Device)
	b := make([]byte, 0, n)
	b = append(b, signingDomain...)
	b = appendField(b, m.MsgId)
	b = appendField(b, m.Feeds)
	b = appendField(b, m.MsgType)
	b = appendField(b, m.From)
	b = appendField(b, payload)
	b = appendField(b, created)
	b = appendField(b, m.Device)
	return b, nil
}

func appendField[T string | []byte](b []byte, field T) []byte {
	b = binary.AppendUvarint(b, uint64(len(field)))
	return append(b, field...)
}

// Sign signs the message with a device's libp2p Ed25519 key: it sets Device to
// the key's peer id and Sig to the signature. It does not Validate; on error
// the message is left unchanged.
func (m *Message) Sign(key crypto.PrivKey) error {
	if key == nil {
		return errors.New("sign message: nil key")
	}
	if key.Type() != crypto.Ed25519 {
		return fmt.Errorf("sign message: %v key, want Ed25519", key.Type())
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("sign message: peer id: %w", err)
	}
	signed := *m
	signed.Device = id.String()
	b, err := signed.SigningBytes()
	if err != nil {
		return fmt.Errorf("sign message: %w", err)
	}
	sig, err := key.Sign(b)
	if err != nil {
		return fmt.Errorf("sign message: %w", err)
	}
	m.Device = signed.Device
	m.Sig = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// Verify checks Sig against the Ed25519 public key inlined in Device, a
// libp2p peer id in its canonical text form. It says nothing about whether
// Device belongs to From: callers check that against what the server told
// them. Errors wrap ErrBadSignature.
func (m *Message) Verify() error {
	if m.Sig == "" {
		return fmt.Errorf("%w: message not signed", ErrBadSignature)
	}
	sig, err := decodeSig(m.Sig)
	if err != nil {
		return fmt.Errorf("%w: Sig: %w", ErrBadSignature, err)
	}
	pub, err := devicePublicKey(m.Device)
	if err != nil {
		return err
	}
	b, err := m.SigningBytes()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	ok, err := pub.Verify(b, sig)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if !ok {
		return fmt.Errorf("%w: does not match the message and Device", ErrBadSignature)
	}
	return nil
}

// DevicePublicKey returns the Ed25519 public key inlined in a device id (a
// libp2p peer id in canonical text form). Errors wrap ErrBadSignature.
func DevicePublicKey(device string) (crypto.PubKey, error) { return devicePublicKey(device) }

// maxCachedKeys bounds the cache of device keys; past it the cache starts
// over.
const maxCachedKeys = 4096

// deviceKeys caches the public keys of the devices seen lately: decoding a
// peer id is a fair part of a verification, and a history has few devices.
var deviceKeys struct {
	m sync.Map // device → crypto.PubKey
	n atomic.Int64
}

func devicePublicKey(device string) (crypto.PubKey, error) {
	if k, ok := deviceKeys.m.Load(device); ok {
		return k.(crypto.PubKey), nil
	}
	pub, err := decodeDeviceKey(device)
	if err != nil {
		return nil, err
	}
	if deviceKeys.n.Add(1) > maxCachedKeys {
		deviceKeys.m.Clear()
		deviceKeys.n.Store(1)
	}
	deviceKeys.m.Store(device, pub)
	return pub, nil
}

func decodeDeviceKey(device string) (crypto.PubKey, error) {
	if device == "" {
		return nil, fmt.Errorf("%w: no Device", ErrBadSignature)
	}
	if len(device) > MaxDeviceLen {
		return nil, fmt.Errorf("%w: Device is %d bytes long", ErrBadSignature, len(device))
	}
	id, err := peer.Decode(device)
	if err != nil {
		return nil, fmt.Errorf("%w: Device %q: %w", ErrBadSignature, device, err)
	}
	if id.String() != device {
		return nil, fmt.Errorf("%w: Device %q is not a peer id in canonical form", ErrBadSignature, device)
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: Device %q carries no public key: %w", ErrBadSignature, device, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: Device %q has a %v key, want Ed25519", ErrBadSignature, device, pub.Type())
	}
	return pub, nil
}

// decodeSig decodes a Sig field, which must be the exact standard base64 of
// 64 bytes (no line breaks, no stray padding bits).
func decodeSig(s string) ([]byte, error) {
	if len(s) != base64.StdEncoding.EncodedLen(sigSize) {
		return nil, fmt.Errorf("%d characters, want %d", len(s), base64.StdEncoding.EncodedLen(sigSize))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(sig) != sigSize || base64.StdEncoding.EncodeToString(sig) != s {
		return nil, errors.New("not the standard base64 of a 64-byte signature")
	}
	return sig, nil
}

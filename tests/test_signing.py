"""The wire's Signer computes standard HMAC-SHA256 over the parts in order."""

import hashlib
import hmac
import os

import pytest

from pxcluster.wire import Signer, new_key


@pytest.mark.parametrize("key_size", [1, 32, 63, 64, 65, 200])
def test_signatures_are_hmac_sha256_of_the_parts_in_order(key_size):
    key = os.urandom(key_size)
    signer = Signer(key)
    for message in (b"", b"header", os.urandom(5000)):
        expected = hmac.new(key, message, hashlib.sha256).hexdigest().encode()
        assert signer.sign([message]) == expected
        parts = [message[:3], memoryview(message[3:10]), bytearray(message[10:])]
        assert signer.sign(parts) == expected  # split anywhere, any buffer type
        assert signer.verify(expected, [message])
        assert not signer.verify(expected, [message + b"x"])


def test_a_connection_files_key_and_another_key_disagree():
    header = b"a header"
    first, second = Signer(new_key()), Signer(new_key())
    assert not second.verify(first.sign([header]), [header])


def test_an_empty_key_signs_nothing():
    assert Signer(b"").sign([b"header"]) == b""

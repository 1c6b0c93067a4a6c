"""Platform detection and canonical URLs: the same content always gets the same URL."""

import pytest

from services.intake.domain import canonicalise, detect_platform
from shared.events import Platform


@pytest.mark.parametrize("url, platform", [
    ("https://www.facebook.com/groups/1", Platform.facebook),
    ("https://m.facebook.com/story.php?id=1", Platform.facebook),
    ("https://fb.com/page", Platform.facebook),
    ("https://fb.me/abc", Platform.facebook),
    ("https://www.instagram.com/p/xyz/", Platform.instagram),
    ("https://youtube.com/watch?v=1", Platform.youtube),
    ("https://youtu.be/1", Platform.youtube),
    ("https://x.com/someone/status/1", Platform.x),
    ("https://twitter.com/someone", Platform.x),
    ("https://www.tiktok.com/@user/video/1", Platform.tiktok),
    ("https://t.me/channel", Platform.telegram),
    ("https://telegram.me/channel", Platform.telegram),
    ("https://example.org/page", Platform.other),
    ("https://notfacebook.com/page", Platform.other),
    ("https://facebook.com.evil.example/page", Platform.other),
    ("HTTPS://WWW.FACEBOOK.COM/Groups/1", Platform.facebook),
])
def test_the_platform_is_detected_from_the_host(url, platform):
    assert detect_platform(url) is platform


@pytest.mark.parametrize("url, canonical", [
    ("HTTPS://WWW.Facebook.COM/groups/1/", "https://facebook.com/groups/1"),
    ("http://m.facebook.com/groups/1", "https://facebook.com/groups/1"),
    ("https://facebook.com/groups/1#comments", "https://facebook.com/groups/1"),
    ("https://facebook.com/groups/1?utm_source=a&utm_campaign=b&fbclid=c", "https://facebook.com/groups/1"),
    ("https://facebook.com/watch?v=2&utm_medium=x", "https://facebook.com/watch?v=2"),
    ("https://youtu.be/abc?si=tracking", "https://youtube.com/watch?v=abc"),
    ("https://www.youtube.com/watch?v=abc&feature=share", "https://youtube.com/watch?v=abc"),
    ("https://x.com/a?b=2&a=1", "https://x.com/a?a=1&b=2"),
    ("https://www.instagram.com/p/xyz/?igshid=123", "https://instagram.com/p/xyz"),
    ("facebook.com/groups/1", "https://facebook.com/groups/1"),
    ("http://Example.org:80/Path", "http://example.org/Path"),
    ("https://example.org:8443/x", "https://example.org:8443/x"),
    ("https://example.org", "https://example.org/"),
    ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
])
def test_urls_are_canonicalised(url, canonical):
    assert canonicalise(url) == canonical


def test_canonicalising_a_canonical_url_changes_nothing():
    for url in ("https://facebook.com/groups/1", "https://youtube.com/watch?v=abc", "http://example.org/Path"):
        assert canonicalise(canonicalise(url)) == canonicalise(url)


@pytest.mark.parametrize("url, message", [
    ("ftp://example.org/x", "scheme"),
    ("javascript:alert(1)", "host"),
    ("https://", "host"),
    ("https://localhost/x", "host"),
    ("https://exa mple.org/x", "white space"),
    ("https://example.org:notaport/x", "port"),
])
def test_urls_that_cannot_be_referred_are_refused_with_a_reason(url, message):
    with pytest.raises(ValueError, match=message):
        canonicalise(url)

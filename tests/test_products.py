"""Product reviews (issue 13): stored with the service review, figures per product of one
shop, pages and JSON, the form, the ticket; two shops selling the same SKU never mix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailrelay.store import NewInvitation, NewProductReview, NewReview, Queries, ReviewText, Store

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _review(q: Queries, shop: str, stars: int, name: str, at: datetime) -> int:
    invitation = q.insert_invitation(NewInvitation(
        shop=shop, shipment_id=None, customer_email=f"{name.lower()}@example.com",
        customer_name=name, reference=None, locale="en", method="automatic", status="sent",
        token=f"token-{name}", created_at=at, due_at=at))
    return q.insert_review(NewReview(
        shop=shop, invitation_id=invitation, method="automatic",
        text=ReviewText(stars, None, "Came quickly and well packed.", name),
        customer_email=f"{name.lower()}@example.com", reference=None, locale="en",
        created_at=at))


def _boots(stars: int, text: str | None = "Comfortable from the first day.") -> NewProductReview:
    return NewProductReview(n=1, stars=stars, text=text, sku="BOOT-42", name="Trail boot",
                            url="https://acme.example/boot", image="https://acme.example/b.jpg",
                            gtin="4006381333931", mpn="TB-42", brand="Acme")


def _socks(stars: int) -> NewProductReview:
    return NewProductReview(n=2, stars=stars, text=None, sku="SOCK-7", name="Wool socks")


def _store_with_reviews(path: Path) -> tuple[Store, dict[str, int]]:
    store = Store(path)

    def fill(q: Queries) -> dict[str, int]:
        ids = {"ann": _review(q, "acme", 5, "Ann", T0),
               "bob": _review(q, "acme", 2, "Bob", T0 + timedelta(hours=1)),
               "eve": _review(q, "globex", 1, "Eve", T0 + timedelta(hours=2))}
        q.save_product_reviews(ids["ann"], "acme", [_boots(5), _socks(4)], T0)
        q.save_product_reviews(ids["bob"], "acme", [_boots(3)], T0 + timedelta(hours=1))
        # Another shop selling the very same SKU.
        q.save_product_reviews(ids["eve"], "globex", [_boots(1)], T0 + timedelta(hours=2))
        q.add_tag(ids["ann"], "homepage", T0)
        return ids

    return store, store.write_sync(fill)


def test_product_reviews_are_stored_with_their_review_in_the_triggers_order(
        tmp_path: Path) -> None:
    store, ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        rows = store.read(lambda q: q.product_reviews_of(ids["ann"]))
        assert [(r.n, r.sku, r.stars) for r in rows] == [(1, "BOOT-42", 5), (2, "SOCK-7", 4)]
        assert (rows[0].gtin, rows[0].mpn, rows[0].brand) == ("4006381333931", "TB-42", "Acme")
        assert rows[0].image == "https://acme.example/b.jpg" and rows[1].text is None


def test_saving_again_updates_changed_ratings_and_drops_those_no_longer_given(
        tmp_path: Path) -> None:
    store, ids = _store_with_reviews(tmp_path / "relay.db")
    later = T0 + timedelta(days=1)
    with store:
        store.write_sync(lambda q: q.save_product_reviews(
            ids["ann"], "acme", [_boots(5)], later))
        rows = store.read(lambda q: q.product_reviews_of(ids["ann"]))
        assert [(r.sku, r.stars, r.updated_at) for r in rows] == [
            ("BOOT-42", 5, T0.isoformat(timespec="microseconds"))]  # unchanged: same time
        store.write_sync(lambda q: q.save_product_reviews(
            ids["ann"], "acme", [_boots(4, "Softer after a week.")], later))
        row = store.read(lambda q: q.product_reviews_of(ids["ann"]))[0]
        assert (row.stars, row.text) == (4, "Softer after a week.")
        assert row.created_at < row.updated_at


def test_a_products_figures_count_only_its_shop(tmp_path: Path) -> None:
    store, _ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        acme = store.read(lambda q: q.product_rating("acme", "BOOT-42"))
        globex = store.read(lambda q: q.product_rating("globex", "BOOT-42"))
        assert acme is not None and globex is not None
        assert (acme.count, acme.average) == (2, 4.0)
        assert acme.distribution == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
        assert (globex.count, globex.average) == (1, 1.0)
        assert store.read(lambda q: q.product_rating("globex", "SOCK-7")) is None
        names = [r.reviewer_name for r in store.read(
            lambda q: q.product_reviews("acme", "BOOT-42"))]
        assert names == ["Bob", "Ann"]  # newest first, never Eve of globex
        products = store.read(lambda q: q.shop_products("acme"))
        assert [(p.sku, p.count, p.name) for p in products] == [
            ("BOOT-42", 2, "Trail boot"), ("SOCK-7", 1, "Wool socks")]


def test_the_tag_filter_keeps_reviews_whose_service_review_has_the_tag(tmp_path: Path) -> None:
    store, _ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        tagged = store.read(lambda q: q.product_rating("acme", "BOOT-42", "homepage"))
        assert tagged is not None and (tagged.count, tagged.average) == (1, 5.0)
        listed = store.read(lambda q: q.product_reviews("acme", "BOOT-42", tag="homepage"))
        assert [r.reviewer_name for r in listed] == ["Ann"] and listed[0].tags == ["homepage"]
        assert [p.sku for p in store.read(lambda q: q.shop_products("acme", tag="nope"))] == []


def test_a_reported_review_takes_its_product_reviews_off_the_public_figures(
        tmp_path: Path) -> None:
    store, ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        store.write_sync(lambda q: q.report_review(ids["bob"], "spam", T0))
        acme = store.read(lambda q: q.product_rating("acme", "BOOT-42"))
        assert acme is not None and (acme.count, acme.average) == (1, 5.0)
        assert [r.reviewer_name for r in store.read(
            lambda q: q.product_reviews("acme", "BOOT-42"))] == ["Ann"]
        hidden = store.read(lambda q: q.list_product_reviews(shop="acme", public=False))
        assert [r.product.review_id for r in hidden] == [ids["bob"]]
        feed = store.read(lambda q: q.list_product_reviews(shop="acme"))
        assert {(r.product.sku, r.reviewer_name) for r in feed} == {
            ("BOOT-42", "Ann"), ("SOCK-7", "Ann")}


def test_forgetting_a_customer_erases_their_product_review_texts(tmp_path: Path) -> None:
    store, ids = _store_with_reviews(tmp_path / "relay.db")
    with store:
        store.write_sync(lambda q: q.forget("ann@example.com", T0))
        rows = store.read(lambda q: q.product_reviews_of(ids["ann"]))
        assert [r.text for r in rows] == [None, None]
        socks = store.read(lambda q: q.product_rating("acme", "SOCK-7"))
        assert socks is not None and socks.count == 0

import pytest
import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.menu import Menu, evaluate_menu, expected_values
from bundleflow.valuations.items import AdditiveValuation
from bundleflow.valuations.xor import XORValuation


def test_hand_computed_lottery_menu():
    # two items, additive values (bidder0: 1, 2), (bidder1: 3, 0)
    v = AdditiveValuation(torch.tensor([[1.0, 2.0], [3.0, 0.0]]))
    bundles = torch.tensor(
        [
            [[1, 0], [0, 1]],  # 50/50 lottery between item 0 and item 1
            [[1, 1], [0, 0]],  # grand bundle with prob 0.25
        ]
    )
    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    prices = torch.tensor([1.2, 0.5])
    out = evaluate_menu(Menu(bundles, probs, prices), v)
    # bidder0: EV (1.5, 0.75) -> u (0.3, 0.25) -> element 0, pays 1.2
    # bidder1: EV (1.5, 0.75) -> u (0.3, 0.25) -> element 0, pays 1.2
    assert out.choice.tolist() == [0, 0]
    assert out.revenue == pytest.approx(1.2)
    assert out.welfare == pytest.approx(1.5)
    assert out.null_rate == 0.0
    assert out.sales.tolist() == [2, 0]


def test_null_option_and_ties_favour_seller():
    v = XORValuation(torch.tensor([[[1, 0]], [[1, 0]]], dtype=torch.bool), torch.tensor([[1.0], [0.4]]))
    # element A: item 0 at price 0.6; element B: items 0 and 1 at price 0.7
    menu = Menu.deterministic(torch.tensor([[1, 0], [1, 1]]), torch.tensor([0.6, 0.7]))
    out = evaluate_menu(menu, v)
    # bidder0: u = (0.4, 0.3) -> A; bidder1 (value 0.4): u = (-0.2, -0.3) -> nothing
    assert out.choice.tolist() == [0, -1]
    assert out.revenue == pytest.approx(0.3)
    assert out.null_rate == pytest.approx(0.5)
    # zero utility: the bidder buys (seller-favourable)
    menu = Menu.deterministic(torch.tensor([[1, 0]]), torch.tensor([1.0]))
    out = evaluate_menu(menu, v)
    assert out.choice.tolist() == [0, -1] and out.revenue == pytest.approx(0.5)


def test_tie_prefers_higher_price():
    v = AdditiveValuation(torch.tensor([[1.0, 1.0]]))
    # u = 2-1.5 = 0.5 for the grand bundle, 1-0.5 = 0.5 for item 0: tie -> higher price 1.5
    menu = Menu.deterministic(torch.tensor([[1, 0], [1, 1]]), torch.tensor([0.5, 1.5]))
    out = evaluate_menu(menu, v)
    assert out.choice.tolist() == [1] and out.revenue == pytest.approx(1.5)


def _random_bidders_and_menu(n: int, seed: int):
    """``n`` XOR bidders (4 atoms over 6 items) and a menu of 7 lotteries over 3 bundles each."""
    g = torch.Generator().manual_seed(seed)
    v = XORValuation(torch.rand(n, 4, 6, generator=g) < 0.4, torch.rand(n, 4, generator=g))
    menu = Menu(
        (torch.rand(7, 3, 6, generator=g) < 0.6).float(),
        torch.softmax(torch.randn(7, 3, generator=g), -1),
        torch.rand(7, generator=g) * 0.5,
    )
    return v, menu


def test_chunked_evaluation_matches_small_batches():
    v, menu = _random_bidders_and_menu(1300, seed=0)
    full = evaluate_menu(menu, v)
    pay = torch.cat(
        [evaluate_menu(menu, v.subset(torch.arange(i, min(1300, i + 100)))).payment for i in range(0, 1300, 100)]
    )
    torch.testing.assert_close(full.payment, pay)
    assert int(full.sales.sum()) + round(full.null_rate * 1300) == 1300


def test_expected_values_in_bidder_chunks_equal_one_table(monkeypatch):
    import bundleflow.mechanisms.menu as menu_mod

    v, menu = _random_bidders_and_menu(300, seed=1)
    whole = expected_values(menu, v)
    assert whole.shape == (300, 7)
    # by hand for bidder 0: sum_d p[j, d] v(bundle[j, d])
    ref = (menu.probs.double() * v.subset(torch.arange(1)).bundle_values(menu.bundles.reshape(21, 6)).view(7, 3)).sum(1)
    torch.testing.assert_close(whole[0], ref)
    monkeypatch.setattr(menu_mod, "VALUE_TABLE_ENTRIES", 21 * 32)  # 32 bidders a chunk: 10 chunks
    # the same sums over chunks of bidders: equal to rounding (a BLAS kernel may block a matmul of
    # 32 rows differently from one of 300, by CPU), far below any value here (1e-12 of values near 1)
    torch.testing.assert_close(expected_values(menu, v), whole, rtol=0, atol=1e-12)
    assert expected_values(menu, v.subset(torch.arange(0))).shape == (0, 7)


@pytest.mark.parametrize(
    "bundles, probs, prices, msg",
    [
        (torch.ones(2, 3), torch.ones(2, 1), torch.ones(2), "shape \\[J, D, m\\]"),
        (torch.ones(2, 1, 3), torch.ones(2, 2), torch.ones(2), "probs must have shape"),
        (torch.ones(2, 1, 3), torch.ones(2, 1), torch.ones(3), "prices must have shape"),
        (torch.ones(2, 1, 3), torch.full((2, 1), 0.5), torch.ones(2), "sum to 1"),
        (torch.ones(2, 1, 3), torch.ones(2, 1), torch.tensor([1.0, float("nan")]), "finite"),
        (torch.full((2, 1, 3), 0.3), torch.ones(2, 1), torch.ones(2), "0/1"),
    ],
)
def test_menu_bad_input(bundles, probs, prices, msg):
    with pytest.raises(InputError, match=msg):
        Menu(bundles, probs, prices)


def test_menu_item_mismatch_and_roundtrip():
    menu = Menu.deterministic(torch.tensor([[1, 0, 1]]), torch.tensor([0.3]))
    v = AdditiveValuation(torch.ones(2, 2))
    with pytest.raises(InputError, match="menu has 3 items but the valuation has 2"):
        evaluate_menu(menu, v)
    again = Menu.from_dict(menu.to_dict())
    torch.testing.assert_close(again.prices, menu.prices)
    with pytest.raises(InputError, match="lacks field"):
        Menu.from_dict({"bundles": [[[1]]]})


def test_mixed_bundling_hand_computed():
    # XOR bidders on 2 items: b0 wants {0} for 1.0; b1 wants {0,1} for 3.0; b2 wants {1} for 0.5
    atoms = torch.tensor([[[1, 0]], [[1, 1]], [[0, 1]]], dtype=torch.bool)
    v = XORValuation(atoms, torch.tensor([[1.0], [3.0], [0.5]]))
    item_prices = torch.tensor([0.8, 0.4])
    # a la carte alone = item pricing: b0 buys {0} (u .2, pays .8), b1 {0,1} (u 1.8, pays 1.2), b2 {1} (u .1, pays .4)
    grand = torch.tensor([[[1.0, 1.0]]])
    one = torch.ones(1, 1, dtype=torch.float64)
    priced_out = Menu(grand, one, torch.tensor([3.0]), item_prices)  # grand bundle at the cap: nobody takes it
    out = evaluate_menu(priced_out, v)
    _, pay_ip = v.demand(item_prices)
    assert out.revenue == pytest.approx(float(pay_ip.mean())) == pytest.approx((0.8 + 1.2 + 0.4) / 3)
    assert out.a_la_carte_rate == 1.0 and out.null_rate == 0.0 and out.choice.tolist() == [-1, -1, -1]
    menu = Menu(grand, one, torch.tensor([1.1]), item_prices)
    out = evaluate_menu(menu, v)
    # b0: bundle u = 1.0 - 1.1 < 0.2 -> a la carte .8; b1: 1.9 > 1.8 -> bundle, pays 1.1; b2: a la carte .4
    assert out.choice.tolist() == [-1, 0, -1]
    assert out.revenue == pytest.approx((0.8 + 1.1 + 0.4) / 3)
    # tie: bundle at 1.2 gives b1 utility 1.8 = a la carte; both pay 1.2
    out = evaluate_menu(Menu(menu.bundles, menu.probs, torch.tensor([1.2]), item_prices), v)
    assert out.revenue == pytest.approx((0.8 + 1.2 + 0.4) / 3)
    # round trips (JSON lists and checkpoint tensors) keep every field, item prices included
    for d in (menu.to_dict(), menu.to_tensors()):
        again = Menu.from_dict(d)
        torch.testing.assert_close(again.item_prices, item_prices.double())
        assert torch.equal(again.bundles, menu.bundles) and torch.equal(again.probs, menu.probs)
        assert evaluate_menu(again, v).revenue == evaluate_menu(menu, v).revenue
    assert menu.to_tensors()["bundles"].dtype == torch.bool
    with pytest.raises(InputError, match="item_prices"):
        Menu(menu.bundles, menu.probs, menu.prices, torch.tensor([0.5, -1.0]))
    with pytest.raises(InputError, match="item_prices"):
        Menu(menu.bundles, menu.probs, menu.prices, torch.tensor([0.5, 0.1, 0.2]))

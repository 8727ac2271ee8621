import pytest

from discograd._optional import require


def test_require_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 'discograd\[solvers\]'"):
        require("a_module_that_does_not_exist", extra="solvers", purpose="this test")
    assert require("math", extra="solvers", purpose="this test").sqrt(4.0) == 2.0

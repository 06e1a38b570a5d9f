"""The test toolkit: one place for the helpers every level of the suite shares."""

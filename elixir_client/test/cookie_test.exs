defmodule HordeC.CookieTest do
  @moduledoc "Authentication: a wrong cookie is rejected in both directions and nothing breaks."
  use HordeC.InteropCase, async: true

  test "a BEAM node with another cookie gets :pang and hordec logs the rejection" do
    h = start_hordec()
    p = start_peer(cookie: :not_the_right_cookie)
    mark = log_mark(h)

    assert peer_call(p, Node, :ping, [h.node]) == :pang

    assert_log(h, [~r/^warn hordec: /, ~r/#{Regex.escape(Atom.to_string(p.node))}/, ~r/cookie/i],
      since: mark
    )

    # the C node keeps serving everybody else
    assert ctl(h, :ping) == :pong
    refute p.node in peers(h)
  end

  test "--cookie-file works, and the raw handshake digest check rejects a wrong cookie" do
    file = Path.join(System.tmp_dir!(), "hordec_cookie_#{System.unique_integer([:positive])}")
    File.write!(file, "#{cookie()}\n")
    File.chmod!(file, 0o600)
    on_exit(fn -> File.rm(file) end)

    h = start_hordec(cookie_file: file)
    assert ctl(h, :ping) == :pong

    raw_name = :"#{unique_name("raw")}@127.0.0.1"
    assert {:error, _} = RawDist.connect(h.node, raw_name, "wrong_cookie")

    assert_log(h, [~r/^warn hordec: /, ~r/#{Regex.escape(Atom.to_string(raw_name))}/, ~r/cookie/i])

    ok_name = :"#{unique_name("raw")}@127.0.0.1"
    assert {:ok, conn} = RawDist.connect(h.node, ok_name, cookie())
    RawDist.close(conn)
    assert ctl(h, :ping) == :pong
  end

  test "hordec connecting to a BEAM node with another cookie gets an error and keeps serving" do
    h = start_hordec()
    p = start_peer(cookie: :another_cookie)

    assert {:error, reason} = ctl(h, {:connect, p.node}, 10_000)
    assert reason in [:auth, :noconnection], "unexpected reason #{inspect(reason)}"
    assert ctl(h, :ping) == :pong
    refute p.node in peers(h)

    # and calls through it fail cleanly
    assert {:error, _} = ctl(h, {:call, p.node, :init, :ping, 1_000}, 10_000)
    assert ctl(h, {:echo, :still_alive}) == :still_alive
  end

  test "hordec connecting to a BEAM node with the same cookie works" do
    h = start_hordec()
    p = start_peer()
    assert ctl(h, {:connect, p.node}, 10_000) == :ok
    assert p.node in peers(h)
    assert h.node in peer_call(p, Node, :list, [:hidden])
  end
end

defmodule HordeC.GenCallTagTest do
  @moduledoc """
  The caller's tag of a `$gen_call`, sent by hand as `{:"$gen_call", {self(), Tag}, Request}`:
  hordec must answer `{Tag, Reply}` for a tag of any shape and size (there used to be a
  256-byte ceiling), also when it answers later, and must answer `[:alias | Ref]` tags by
  ALIAS_SEND (so a reply to an alias that is no longer active is dropped by our node). Also:
  a refused handshake is reported as `:auth` from the runtime's error code.
  """
  use HordeC.InteropCase, async: true

  setup_all do
    %{h: start_hordec()}
  end

  defp call_by_hand(h, tag, request) do
    send({:hordec, h.node}, {:"$gen_call", {self(), tag}, request})
  end

  # Everything hordec sent us before answering this call has arrived (one connection, in order).
  defp sync(h), do: assert(ctl(h, :ping) == :pong)

  test "tags over 256 bytes are answered", %{h: h} do
    for size <- [300, 5_000, 100_000] do
      tag = {make_ref(), :binary.copy("t", size)}
      assert byte_size(:erlang.term_to_binary(tag)) > 256
      call_by_hand(h, tag, :ping)
      assert_receive {^tag, :pong}, 5_000
      call_by_hand(h, tag, {:echo, {:big, tag}})
      assert_receive {^tag, {:big, ^tag}}, 5_000
    end
  end

  test "tags of other shapes are answered as they came", %{h: h} do
    for tag <- [make_ref(), 42, :a_tag, "bin", {make_ref(), node()}, [1, 2, 3], %{k: self()}] do
      call_by_hand(h, tag, :ping)
      assert_receive {^tag, :pong}, 5_000
    end
  end

  test "a big tag is kept for a reply that comes later", %{h: h} do
    tag = {make_ref(), :binary.copy("later", 200)}
    # hordec calls a name that does not exist on itself: answered once the monitor says noproc
    call_by_hand(h, tag, {:call, h.node, :no_such_name, :hello, 1_000})
    assert_receive {^tag, {:error, :noproc}}, 5_000
    # and calls itself: answered once its own call came back
    call_by_hand(h, tag, {:call, h.node, :hordec, :ping, 1_000})
    assert_receive {^tag, {:ok, :pong}}, 5_000
  end

  test "[:alias | Ref] tags are answered by ALIAS_SEND", %{h: h} do
    alias_ref = :erlang.alias()
    tag = [:alias | alias_ref]
    call_by_hand(h, tag, :ping)
    assert_receive {^tag, :pong}, 5_000

    # An inactive alias drops what is sent to it: a reply sent to our pid instead would arrive.
    true = :erlang.unalias(alias_ref)
    call_by_hand(h, tag, :ping)
    sync(h)
    refute_received {^tag, _}
  end

  test "connecting to a node with another cookie fails with :auth" do
    h = start_hordec()
    p = start_peer(cookie: :yet_another_cookie)
    assert ctl(h, {:connect, p.node}, 10_000) == {:error, :auth}
    assert ctl(h, :ping) == :pong
  end
end

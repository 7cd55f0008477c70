defmodule HordeC.EchoTest do
  @moduledoc """
  `{:echo, term}` must return the very same term: the C node's codec (and its reply
  path) must not alter anything it does not understand.
  """
  use HordeC.InteropCase, async: true

  setup_all do
    %{h: start_hordec()}
  end

  defp echo(h, term, timeout \\ 10_000), do: ctl(h, {:echo, term}, timeout)

  defp assert_echo(h, term) do
    reply = echo(h, term)
    assert reply === term
    # === does not tell 0.0 from -0.0 (OTP 25), the external format does
    assert :erlang.term_to_binary(reply) == :erlang.term_to_binary(term)
  end

  defp nest_tuple(0), do: :leaf
  defp nest_tuple(n), do: {n, nest_tuple(n - 1)}
  defp nest_list(0), do: []
  defp nest_list(n), do: [nest_list(n - 1)]

  test "10 MB binary", %{h: h} do
    bin = :crypto.strong_rand_bytes(10_000_000)
    assert echo(h, bin, 30_000) === bin
  end

  test "deep nesting (depth 1000)", %{h: h} do
    assert_echo(h, nest_tuple(1000))
    assert_echo(h, nest_list(1000))
    assert_echo(h, Enum.reduce(1..1000, %{}, fn i, acc -> %{i => acc} end))
  end

  test "maps: empty, small, > 32 keys, nested, odd keys", %{h: h} do
    assert_echo(h, %{})
    assert_echo(h, %{a: 1, b: "two", c: [3]})
    big = Map.new(1..100, fn i -> {i, Integer.to_string(i)} end)
    assert map_size(big) > 32
    assert_echo(h, big)
    assert_echo(h, %{{1, 2} => %{[] => <<>>}, 1.5 => self(), nested: %{big: big, list: [big]}})
    assert_echo(h, Map.new(1..5000, &{{:k, &1}, &1}))
  end

  test "atoms, including UTF-8 and edge cases", %{h: h} do
    for atom <- [
          :ok,
          true,
          false,
          nil,
          :"",
          :"héllo_😀",
          :日本語,
          String.to_atom(String.duplicate("a", 255)),
          String.to_atom(String.duplicate("😀", 255)),
          :"with space",
          Some.Module
        ] do
      assert_echo(h, atom)
    end
  end

  test "integers: small, 32/64-bit edges, bignums", %{h: h} do
    ints =
      [0, 1, -1, 255, 256, 2 ** 27, -(2 ** 27) - 1, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 32]
      |> Kernel.++([
        2 ** 63 - 1,
        -(2 ** 63),
        2 ** 64,
        -(2 ** 64),
        2 ** 200,
        -(2 ** 200),
        2 ** 2000,
        -(3 ** 3000)
      ])

    for i <- ints, do: assert_echo(h, i)
  end

  test "floats, including -0.0, huge, denormal", %{h: h} do
    <<neg_zero::float>> = <<0x80, 0::56>>

    for f <- [
          0.0,
          neg_zero,
          1.0,
          -1.5,
          3.141592653589793,
          1.0e308,
          -1.0e308,
          5.0e-324,
          2.2250738585072014e-308
        ] do
      assert_echo(h, f)
    end

    <<bits::64>> = <<echo(h, neg_zero)::float>>
    assert bits == 0x8000000000000000
  end

  test "pids, references, ports (local and remote)", %{h: h} do
    p = start_peer()
    remote_pid = peer_call(p, :erlang, :whereis, [:init])
    remote_ref = peer_call(p, :erlang, :make_ref, [])
    port = Port.open({:spawn, "cat"}, [])

    try do
      for t <- [
            self(),
            make_ref(),
            port,
            remote_pid,
            remote_ref,
            {self(), make_ref(), port},
            :erlang.list_to_pid(~c"<0.0.0>")
          ] do
        assert_echo(h, t)
      end

      # an alias is a reference too
      alias_ref = :erlang.alias()
      assert_echo(h, alias_ref)
    after
      Port.close(port)
    end
  end

  test "lists: improper, charlists, strings, long", %{h: h} do
    for t <- [
          [],
          [1 | 2],
          [1, 2 | :tail],
          [[] | []],
          ~c"charlist",
          ~c"héllo",
          [0, 255, 256, 1_000_000],
          "",
          "utf-8 string: héllo 😀",
          Enum.to_list(1..100_000),
          Enum.map(1..1000, &Integer.to_string/1)
        ] do
      assert_echo(h, t)
    end
  end

  test "tuples: empty, large arity", %{h: h} do
    assert_echo(h, {})
    assert_echo(h, {1})
    assert_echo(h, List.to_tuple(Enum.to_list(1..300)))
    assert_echo(h, List.to_tuple(Enum.to_list(1..100_000)))
  end

  test "binaries and bitstrings", %{h: h} do
    for t <- [
          <<>>,
          <<0>>,
          <<1::3>>,
          <<255, 1::1>>,
          <<1::size(63)>>,
          :crypto.strong_rand_bytes(70_000)
        ] do
      assert_echo(h, t)
    end

    # a sub-binary of a larger binary
    <<_::binary-size(3), sub::binary-size(10), _::binary>> = :crypto.strong_rand_bytes(100)
    assert_echo(h, sub)
  end

  test "terms that look like protocol messages", %{h: h} do
    for t <- [
          {:"$gen_call", {self(), make_ref()}, :ping},
          {:"$gen_cast", :x},
          {:EXIT, self(), :kill},
          {:DOWN, make_ref(), :process, self(), :normal},
          [:alias | make_ref()]
        ] do
      assert_echo(h, t)
    end
  end

  test "export funs round-trip", %{h: h} do
    assert_echo(h, &Enum.map/2)
    assert_echo(h, &:erlang.node/0)
  end

  test "local funs (closures) round-trip", %{h: h} do
    x = :captured
    f = fn y -> {x, y} end
    reply = echo(h, f)
    assert reply === f
    assert reply.(1) == {:captured, 1}
  end

  test "mixed kitchen sink", %{h: h} do
    term = %{
      "bin" => <<0, 1, 2>>,
      list: [1, 2.0, "3", :four, {5}, [6 | 7]],
      nested: {[%{a: {<<1::1>>, -(2 ** 100)}}], self(), make_ref()},
      ütf8: ~c"chars"
    }

    assert_echo(h, term)
  end
end

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @title ReentrantToken — a malicious ERC-20 for the tests only (never deployed on the devnet).
/// @notice Behaves like a plain ERC-20 (anyone may mint) until armed: then, the next time the
///         armed `target` moves tokens with transfer/transferFrom, the token calls `target` back
///         with `payload` in the middle of that transfer (one shot). With `bubble` the re-entrant
///         call's revert is passed on (the outer call must fail); without it the outcome is recorded
///         in lastReentryOk / lastReentryData and the transfer completes.
///         `execute` lets the token contract itself act as a writer or holder of options.
contract ReentrantToken {
    string public name;
    string public symbol;
    uint8 public immutable decimals;
    uint256 public totalSupply;

    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    address public target;
    bytes public payload;
    bool public bubble;
    bool public armed;
    uint256 public reentries;
    bool public lastReentryOk;
    bytes public lastReentryData;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);
    event Reentered(address indexed target, bool ok, bytes data);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    function arm(address target_, bytes calldata payload_, bool bubble_) external {
        target = target_;
        payload = payload_;
        bubble = bubble_;
        armed = true;
    }

    function disarm() external {
        armed = false;
    }

    /// @notice Call anything as this contract (e.g. OptionsMarket.write / redeem / releaseCollateral).
    function execute(address to, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory ret) = to.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    function mint(address to, uint256 value) external {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        _maybeReenter();
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "ReentrantToken: insufficient allowance");
            allowance[from][msg.sender] = allowed - value;
        }
        _move(from, to, value);
        _maybeReenter();
        return true;
    }

    function _move(address from, address to, uint256 value) private {
        require(balanceOf[from] >= value, "ReentrantToken: transfer amount exceeds balance");
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }

    function _maybeReenter() private {
        if (!armed || msg.sender != target) return;
        armed = false; // one shot
        reentries += 1;
        (bool ok, bytes memory ret) = target.call(payload);
        lastReentryOk = ok;
        lastReentryData = ret;
        emit Reentered(target, ok, ret);
        if (!ok && bubble) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }
}
